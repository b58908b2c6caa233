"""The providers' daily bill files (对账单) — written by the simulators, read by the adapters for
reconciliation — as far as their formats are public:

- WeChat Pay trade bill (`tradebill`, `bill_type=ALL`): CSV, UTF-8, a header row of Chinese column names,
  one row per payment and per refund with every value prefixed by a back-quote (so spreadsheets keep
  long numbers as text), then a summary header and one summary row. Amounts are yuan (2 decimals), fees
  5 decimals, the rate as `0.60%`.
- Alipay business bill (`trade` bill, 业务明细): CSV whose comment lines start with `#` (title, account,
  period, end marker, totals), a header row, one row per payment (业务类型 `交易`) and refund (`退款`,
  negative
  amounts). Alipay serves it GBK-encoded inside a zip; here it is the CSV text (the adapter's `parse`
  takes the text; `encode_alipay` gives the GBK bytes).
- UnionPay: its settlement files are fixed-width formats not published in full; the simulator writes a
  plain CSV with the same facts (documented in docs/wallets.md).

Every amount is integer fen here; `BillLine` is what reconciliation compares.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the simulator's books make the rows; this module only writes them
    from posgate.wallets.sim.book import BillRow

BEIJING = ZoneInfo("Asia/Shanghai")
WECHAT_COLUMNS = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
WECHAT_SUMMARY = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
]
ALIPAY_COLUMNS = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]
UNIONPAY_COLUMNS = ["txnTime", "queryId", "orderId", "txnType", "txnAmt", "origQryId", "fee", "merId"]


@dataclass(frozen=True)
class BillLine:
    """One bill line in fen: a payment (`kind="pay"`, `amount_fen` the trade amount) or a refund
    (`kind="refund"`, `amount_fen` the refunded amount, `out_refund_no` its merchant number)."""

    kind: str
    trade_no: str
    out_trade_no: str
    amount_fen: int
    fee_fen: int
    at: dt.datetime
    out_refund_no: str = ""


def fee_of(amount_fen: int, rate_ppm: int) -> int:
    """The provider's fee on an amount, rounded half up to the fen.

    >>> fee_of(10000, 6000), fee_of(83, 6000), fee_of(84, 6000)
    (60, 0, 1)
    """
    return (amount_fen * rate_ppm + 500_000) // 1_000_000


def _yuan(fen: int, places: int = 2) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}" + "0" * (places - 2)


def _fen(text: str) -> int:
    text = text.strip().lstrip("`")
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"amount {text[:20]!r} is not a decimal number")
    if frac[2:].strip("0"):
        raise ValueError(f"amount {text[:20]!r} has fractions of a fen")
    value = int(whole) * 100 + int((frac + "00")[:2])
    return -value if negative else value


def _local(at: dt.datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _parse_local(text: str) -> dt.datetime:
    return dt.datetime.strptime(text.strip().lstrip("`"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)


# -- WeChat Pay ------------------------------------------------------------------------------------------


def write_wechat(rows: Iterable[BillRow], appid: str, mchid: str, rate_ppm: int) -> str:
    out = io.StringIO()
    out.write(",".join(WECHAT_COLUMNS) + "\r\n")
    count = settled = refunded = fees = ordered = 0
    for row in rows:
        trade = row.trade
        kind = "NATIVE" if trade.kind == "order" else "MICROPAY"
        if row.refund is None:
            fee = fee_of(trade.amount_fen, rate_ppm)
            values = [
                _local(row.at),
                appid,
                mchid,
                "0",
                "",
                trade.trade_no,
                trade.out_trade_no,
                trade.customer or "",
                kind,
                "SUCCESS",
                "OTHERS",
                "CNY",
                _yuan(trade.amount_fen),
                "0.00",
                "0",
                "0",
                "0.00",
                "0.00",
                "",
                "",
                trade.description,
                trade.attach,
                _yuan(fee, 5),
                f"{rate_ppm / 10000:.2f}%",
                _yuan(trade.amount_fen),
                "0.00",
                "",
            ]
            settled += trade.amount_fen
            ordered += trade.amount_fen
        else:
            fee = -fee_of(row.refund.amount_fen, rate_ppm)
            values = [
                _local(row.at),
                appid,
                mchid,
                "0",
                "",
                trade.trade_no,
                trade.out_trade_no,
                trade.customer or "",
                kind,
                "REFUND",
                "OTHERS",
                "CNY",
                "0.00",
                "0.00",
                row.refund.refund_id,
                row.refund.out_refund_no,
                _yuan(row.refund.amount_fen),
                "0.00",
                "ORIGINAL",
                "SUCCESS",
                trade.description,
                trade.attach,
                _yuan(fee, 5),
                f"{rate_ppm / 10000:.2f}%",
                "0.00",
                _yuan(row.refund.amount_fen),
                "",
            ]
            refunded += row.refund.amount_fen
        fees += fee
        count += 1
        out.write(",".join("`" + v for v in values) + "\r\n")
    out.write(",".join(WECHAT_SUMMARY) + "\r\n")
    summary = [
        str(count),
        _yuan(settled),
        _yuan(refunded),
        "0.00",
        _yuan(fees, 5),
        _yuan(ordered),
        _yuan(refunded),
    ]
    out.write(",".join("`" + v for v in summary) + "\r\n")
    return out.getvalue()


def parse_wechat(text: str) -> list[BillLine]:
    """The lines of a WeChat trade bill. Raises ValueError naming the line number on anything unexpected;
    checks the summary row against the lines."""
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines or lines[0].split(",")[:3] != WECHAT_COLUMNS[:3]:
        raise ValueError("line 1: not a WeChat Pay trade bill header")
    col = {name: i for i, name in enumerate(lines[0].split(","))}
    result: list[BillLine] = []
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith(WECHAT_SUMMARY[0]):
            total = next(csv.reader([lines[number]])) if number < len(lines) else []
            if not total or int(total[0].lstrip("`")) != len(result):
                raise ValueError(f"line {number + 1}: the summary count does not match the lines")
            return result
        cells = next(csv.reader([line]))
        if len(cells) != len(col):
            raise ValueError(f"line {number}: {len(cells)} columns, the header has {len(col)}")
        value = {name: cells[i].lstrip("`") for name, i in col.items()}
        try:
            if value["交易状态"] == "REFUND":
                result.append(
                    BillLine(
                        "refund",
                        value["微信订单号"],
                        value["商户订单号"],
                        _fen(value["退款金额"]),
                        _fen(value["手续费"]),
                        _parse_local(value["交易时间"]),
                        value["商户退款单号"],
                    )
                )
            else:
                result.append(
                    BillLine(
                        "pay",
                        value["微信订单号"],
                        value["商户订单号"],
                        _fen(value["应结订单金额"]),
                        _fen(value["手续费"]),
                        _parse_local(value["交易时间"]),
                    )
                )
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    raise ValueError("the bill has no summary")


# -- Alipay ----------------------------------------------------------------------------------------------


def write_alipay(rows: Iterable[BillRow], pid: str, day: dt.date, rate_ppm: int, now: dt.datetime) -> str:
    out = io.StringIO()
    out.write("#支付宝业务明细查询\r\n")
    out.write(f"#账号：[{pid}]\r\n")
    out.write(
        f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   "
        f"终止日期：[{day + dt.timedelta(days=1):%Y年%m月%d日} 00:00:00]\r\n"
    )
    out.write(
        "#-----------------------------------------业务明细列表----------------------------------------\r\n"
    )
    out.write(",".join(ALIPAY_COLUMNS) + "\r\n")
    pays = refunds = 0
    for row in rows:
        trade = row.trade
        if row.refund is None:
            amount, fee, kind, batch = trade.amount_fen, fee_of(trade.amount_fen, rate_ppm), "交易", ""
            pays += 1
        else:
            amount, kind = -row.refund.amount_fen, "退款"
            fee, batch = -fee_of(row.refund.amount_fen, rate_ppm), row.refund.out_refund_no
            refunds += 1
        values = [
            trade.trade_no,
            trade.out_trade_no,
            kind,
            trade.description,
            _local(trade.created_at),
            _local(row.at),
            "",
            "",
            "",
            "",
            trade.customer or "",
            _yuan(amount),
            _yuan(amount),
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "",
            "0.00",
            "0.00",
            batch,
            _yuan(-fee),
            "0.00",
            "",
        ]
        out.write(",".join(f"{v}\t" if v and i in (0, 1) else v for i, v in enumerate(values)) + "\r\n")
    out.write(
        "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
    )
    out.write(f"#交易合计：{pays}笔，退款合计：{refunds}笔\r\n")
    out.write(
        f"#导出时间：[{_local(now).replace('-', '年', 1).replace('-', '月', 1).replace(' ', '日 ', 1)}]\r\n"
    )
    return out.getvalue()


def encode_alipay(text: str) -> bytes:
    """The bill as Alipay serves it: GBK."""
    return text.encode("gbk")


def parse_alipay(text: str) -> list[BillLine]:
    lines = text.lstrip("\ufeff").splitlines()
    header_at = next((i for i, line in enumerate(lines) if line.startswith("支付宝交易号,")), None)
    if header_at is None:
        raise ValueError("no Alipay business bill header (支付宝交易号,…)")
    col = {name: i for i, name in enumerate(lines[header_at].split(","))}
    result = []
    for number, line in enumerate(lines[header_at + 1 :], start=header_at + 2):
        if line.startswith("#"):
            break
        if not line.strip():
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != len(col):
            raise ValueError(f"line {number}: {len(cells)} columns, the header has {len(col)}")
        value = {name: cells[i] for name, i in col.items()}
        try:
            amount, fee = _fen(value["订单金额（元）"]), -_fen(value["服务费（元）"])
            at = _parse_local(value["完成时间"])
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if value["业务类型"] == "退款":
            result.append(
                BillLine(
                    "refund",
                    value["支付宝交易号"],
                    value["商户订单号"],
                    -amount,
                    fee,
                    at,
                    value["退款批次号/请求号"],
                )
            )
        elif value["业务类型"] == "交易":
            result.append(BillLine("pay", value["支付宝交易号"], value["商户订单号"], amount, fee, at))
        else:
            raise ValueError(f"line {number}: business type {value['业务类型']!r}")
    return result


# -- UnionPay --------------------------------------------------------------------------------------------


def write_unionpay(rows: Iterable[BillRow], mer_id: str, rate_ppm: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(UNIONPAY_COLUMNS)
    for row in rows:
        trade = row.trade
        at = row.at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
        if row.refund is None:
            fee = fee_of(trade.amount_fen, rate_ppm)
            writer.writerow([at, trade.trade_no, trade.out_trade_no, "01", trade.amount_fen, "", fee, mer_id])
        else:
            fee = -fee_of(row.refund.amount_fen, rate_ppm)
            writer.writerow(
                [
                    at,
                    row.refund.refund_id,
                    row.refund.out_refund_no,
                    "04",
                    row.refund.amount_fen,
                    trade.trade_no,
                    fee,
                    mer_id,
                ]
            )
    return out.getvalue()


def parse_unionpay(text: str, out_trade_nos: dict[str, str] | None = None) -> list[BillLine]:
    """UnionPay lines; a refund line names its original by `origQryId` (the trade's queryId); its
    `out_trade_no` is found among the payments of the same file, or in `out_trade_nos`."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != UNIONPAY_COLUMNS:
        raise ValueError("line 1: not a posgate UnionPay bill header")
    known = dict(out_trade_nos or {})
    result = []
    for number, row in enumerate(reader, start=2):
        try:
            at = dt.datetime.strptime(row["txnTime"], "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
            amount, fee = int(row["txnAmt"]), int(row["fee"])
        except (ValueError, TypeError):
            raise ValueError(f"line {number}: bad time or amount") from None
        if row["txnType"] == "01":
            known[row["queryId"]] = row["orderId"]
            result.append(BillLine("pay", row["queryId"], row["orderId"], amount, fee, at))
        elif row["txnType"] == "04":
            original = row["origQryId"]
            result.append(
                BillLine("refund", original, known.get(original, ""), amount, fee, at, row["orderId"])
            )
        else:
            raise ValueError(f"line {number}: txnType {row['txnType']!r}")
    return result
