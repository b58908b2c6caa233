"""The providers' signature schemes against independently computed values: what we sign verifies with
`cryptography` (or pycryptodomex, or the maintained SDKs' own functions) used directly, and what they sign
verifies with ours; timestamps out of the window, wrong keys and tampered fields are refused."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from posgate.wallets import alipay, rsakeys, unionpay, wechatpay
from posgate.wallets.credentials import Credentials, aes_kcv
from posgate.wallets.errors import NotificationRejected, SignatureInvalid

KEY = rsakeys.generate()
OTHER = rsakeys.generate()
NOW = 1_764_720_000


def _raw_sign(message: bytes, key: rsakeys.PrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _raw_verify(message: bytes, signature: str, key: rsakeys.PrivateKey = KEY) -> None:
    key.public_key().verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())


# -- WeChat Pay v3 ---------------------------------------------------------------------------------


def test_wechat_authorization_verifies_with_cryptography_directly() -> None:
    body = '{"appid":"wxd678efh567hg6787","amount":{"total":1}}'
    header = wechatpay.authorization(
        KEY, "1900000109", "SERIAL", "POST", "/v3/pay/transactions/native", body, NOW, "N1"
    )
    auth = wechatpay.parse_authorization(header)
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="N1",signature="')
    message = f"POST\n/v3/pay/transactions/native\n{NOW}\nN1\n{body}\n".encode()
    _raw_verify(message, auth.signature)


def test_wechat_request_signed_directly_is_accepted_and_checked() -> None:
    body = ""
    url = "/v3/pay/transactions/out-trade-no/O1?mchid=1900000109"
    signature = _raw_sign(f"GET\n{url}\n{NOW}\nABC\n\n".encode())
    header = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="ABC",signature="{signature}",'
        f'timestamp="{NOW}",serial_no="S"'
    )
    assert (
        wechatpay.verify_request(KEY.public_key(), header, "GET", url, body, NOW + 10).mchid == "1900000109"
    )
    with pytest.raises(SignatureInvalid, match="does not verify"):
        wechatpay.verify_request(KEY.public_key(), header, "GET", url + "X", body, NOW)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        wechatpay.verify_request(OTHER.public_key(), header, "GET", url, body, NOW)
    with pytest.raises(SignatureInvalid, match="more than 300 s from now"):
        wechatpay.verify_request(KEY.public_key(), header, "GET", url, body, NOW + 301)
    with pytest.raises(SignatureInvalid, match="schema 'Bearer' is not WECHATPAY2-SHA256-RSA2048"):
        wechatpay.parse_authorization("Bearer x")
    with pytest.raises(SignatureInvalid, match="missing signature"):
        wechatpay.parse_authorization(
            'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",serial_no="s"'
        )


def test_wechat_answer_headers_verify_directly_and_with_the_sdk() -> None:
    from wechatpayv3.utils import rsa_verify  # the maintained SDK's own verifier

    body = '{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}'
    headers = wechatpay.signed_headers(KEY, "PUB_KEY_ID_1", body, NOW)
    message = f"{NOW}\n{headers['Wechatpay-Nonce']}\n{body}\n".encode()
    _raw_verify(message, headers["Wechatpay-Signature"])
    assert rsa_verify(
        str(NOW), headers["Wechatpay-Nonce"], body, headers["Wechatpay-Signature"], KEY.public_key()
    )
    wechatpay.verify_answer({"PUB_KEY_ID_1": KEY.public_key()}, headers, body, NOW)
    with pytest.raises(SignatureInvalid, match="is no known platform key"):
        wechatpay.verify_answer({"PUB_KEY_ID_2": KEY.public_key()}, headers, body, NOW)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        wechatpay.verify_answer({"PUB_KEY_ID_1": KEY.public_key()}, headers, body.replace("abc", "abd"), NOW)


def test_wechat_resource_gcm_against_cryptography_and_the_sdk() -> None:
    from wechatpayv3.utils import aes_decrypt

    key = b"0123456789abcdef0123456789abcdef"
    plain = '{"out_trade_no":"O1","trade_state":"SUCCESS"}'
    resource = wechatpay.encrypt_resource(key, plain, "transaction", "transaction", nonce="fdasflkja484")
    assert (
        AESGCM(key).decrypt(b"fdasflkja484", base64.b64decode(resource["ciphertext"]), b"transaction")
        == plain.encode()
    )
    assert aes_decrypt("fdasflkja484", resource["ciphertext"], "transaction", key.decode()) == plain
    theirs = base64.b64encode(AESGCM(key).encrypt(b"123456789012", plain.encode(), b"refund")).decode()
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "nonce": "123456789012",
        "ciphertext": theirs,
        "associated_data": "refund",
    }
    assert wechatpay.decrypt_resource(key, resource) == plain
    with pytest.raises(NotificationRejected) as info:
        wechatpay.decrypt_resource(key, {**resource, "associated_data": "transaction"})
    assert info.value.reason == "decrypt"
    with pytest.raises(NotificationRejected) as info:
        wechatpay.decrypt_resource(b"f" * 32, resource)
    assert info.value.reason == "decrypt"


# -- Alipay RSA2 -------------------------------------------------------------------------------------


def test_alipay_sign_content_is_sorted_unencoded_and_skips_empty() -> None:
    params = {
        "timestamp": "2026-12-03 12:00:00",
        "app_id": "2021",
        "biz_content": '{"a":"b c"}',
        "sign": "x",
        "z": "",
    }
    assert alipay.sign_content(params) == 'app_id=2021&biz_content={"a":"b c"}&timestamp=2026-12-03 12:00:00'


def test_alipay_signature_verifies_with_pycryptodome_and_the_sdk() -> None:
    from alipay import AliPay
    from Cryptodome.Hash import SHA256
    from Cryptodome.PublicKey import RSA
    from Cryptodome.Signature import PKCS1_v1_5

    params = {
        "app_id": "2021",
        "method": "alipay.trade.query",
        "sign_type": "RSA2",
        "biz_content": '{"out_trade_no":"中文"}',
    }
    signed = alipay.sign_params(KEY, params)
    public = RSA.import_key(rsakeys.public_pem(KEY.public_key()))
    digest = SHA256.new(alipay.sign_content(params).encode())
    assert PKCS1_v1_5.new(public).verify(digest, base64.b64decode(signed["sign"]))
    # a notification signed by us verifies with python-alipay-sdk's verify (which drops sign_type)
    note = {"notify_id": "n1", "trade_status": "TRADE_SUCCESS", "total_amount": "1.00", "sign_type": "RSA2"}
    note["sign"] = rsakeys.sign(KEY, alipay.sign_content(note, exclude=("sign", "sign_type")).encode())
    sdk = AliPay(
        appid="2021",
        app_private_key_string=rsakeys.private_pem(OTHER).decode(),
        alipay_public_key_string=rsakeys.public_pem(KEY.public_key()).decode(),
    )
    data = dict(note)
    signature = data.pop("sign")
    assert sdk.verify(data, signature)
    alipay.verify_params(KEY.public_key(), note, notification=True)
    with pytest.raises(SignatureInvalid, match="sign does not verify"):
        alipay.verify_params(KEY.public_key(), {**note, "total_amount": "100.00"}, notification=True)


def test_alipay_answer_signature_is_over_the_exact_text_even_with_braces() -> None:
    response = {
        "code": "10000",
        "msg": "Success",
        "subject": "套餐 {A} }{",
        "qr_code": "https://qr.alipay.com/x",
    }
    raw = alipay.signed_answer(KEY, "alipay.trade.precreate", response)
    inner = raw[raw.index(":") + 1 : raw.rindex(',"sign"')]
    _raw_verify(inner.encode(), json.loads(raw)["sign"])
    assert alipay.read_answer(KEY.public_key(), "alipay.trade.precreate", raw) == response
    with pytest.raises(SignatureInvalid, match="sign does not verify"):
        alipay.read_answer(KEY.public_key(), "alipay.trade.precreate", raw.replace("10000", "10001"))
    with pytest.raises(SignatureInvalid, match="unsigned answer"):
        alipay.read_answer(
            KEY.public_key(), "alipay.trade.precreate", '{"alipay_trade_precreate_response":{}}'
        )


def test_alipay_sdk_cuts_the_signed_text_wrongly_when_a_value_holds_a_brace() -> None:
    """Measured: python-alipay-sdk 3.4.0 finds the signed text by counting braces, also inside strings, so
    a genuine answer whose subject contains '}' fails its verification (ours cuts with a JSON decoder)."""
    from alipay import AliPay
    from alipay.exceptions import AliPayValidationError

    sdk = AliPay(
        appid="2021",
        app_private_key_string=rsakeys.private_pem(OTHER).decode(),
        alipay_public_key_string=rsakeys.public_pem(KEY.public_key()).decode(),
    )
    good = alipay.signed_answer(KEY, "alipay.trade.query", {"code": "10000", "subject": "plain"})
    assert sdk._verify_and_return_sync_response(good, "alipay_trade_query_response")["subject"] == "plain"
    braces = alipay.signed_answer(KEY, "alipay.trade.query", {"code": "10000", "subject": "a}b"})
    with pytest.raises((AliPayValidationError, ValueError)):
        sdk._verify_and_return_sync_response(braces, "alipay_trade_query_response")
    assert alipay.read_answer(KEY.public_key(), "alipay.trade.query", braces)["subject"] == "a}b"


# -- UnionPay ACP --------------------------------------------------------------------------------------


def test_unionpay_signature_is_rsa_over_the_sha256_hex_of_the_sorted_fields() -> None:
    fields = {
        "version": "5.1.0",
        "txnType": "01",
        "orderId": "O1",
        "txnAmt": "100",
        "merId": "777290058110048",
    }
    signed = unionpay.sign_fields(KEY, "69042905377", fields)
    assert signed["certId"] == "69042905377" and signed["signMethod"] == "01"
    content = "&".join(f"{k}={signed[k]}" for k in sorted(signed) if k != "signature")
    digest_hex = hashlib.sha256(content.encode()).hexdigest()
    assert digest_hex == digest_hex.lower()
    _raw_verify(digest_hex.encode(), signed["signature"])
    # and one signed directly verifies with ours
    theirs = {**fields, "signMethod": "01", "certId": "9"}
    theirs_content = "&".join(f"{k}={theirs[k]}" for k in sorted(theirs))
    theirs["signature"] = _raw_sign(hashlib.sha256(theirs_content.encode()).hexdigest().encode())
    unionpay.verify_fields({"9": KEY.public_key()}, theirs)
    with pytest.raises(SignatureInvalid, match="certId '8' is no known key"):
        unionpay.verify_fields({"9": KEY.public_key()}, {**theirs, "certId": "8"})
    with pytest.raises(SignatureInvalid, match="signature does not verify"):
        unionpay.verify_fields({"9": KEY.public_key()}, {**theirs, "txnAmt": "101"})
    with pytest.raises(SignatureInvalid, match="signMethod '11' is not 01"):
        unionpay.verify_fields({"9": KEY.public_key()}, {**theirs, "signMethod": "11"})


# -- credentials never show their secrets --------------------------------------------------------------


def test_credentials_repr_shows_ids_and_fingerprints_only() -> None:
    apiv3 = b"a" * 32
    creds = Credentials(
        "wechat", "1900000109", "wx1", "SER", KEY, {"PUB_KEY_ID_1": OTHER.public_key()}, apiv3
    )
    text = repr(creds) + str(creds) + f"{creds}"
    pem_body = rsakeys.private_pem(KEY).decode().splitlines()[1]
    assert pem_body not in text and "aaaa" not in text and "1900000109" in text
    assert rsakeys.fingerprint(KEY) in text and "apiv3_key=<set>" in text
    assert len(aes_kcv(apiv3)) == 6
