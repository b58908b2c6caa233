"""Settings: environment variables `POSGATE_*`, then `posgate.toml` (in the working directory or
`POSGATE_CONFIG`), then defaults. One `Settings` object is built by the composition root (`bootstrap`)
and passed down.
`load_settings` is how a command builds it: anything invalid (a value, an unknown key, a file that is not
TOML or not UTF-8, an environment variable that does not parse) is one `ConfigError` line naming the setting,
never the value (it may be a key), never a traceback.

Issuers are configuration, not code: each `[[issuers]]` table names a bank, its BIN prefixes, the address
of its host and its zone keys. Issuers may also live in the store (the demo fixture puts them there).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from posgate.errors import ConfigError

_HEX32 = r"^[0-9A-Fa-f]{32}$"


def _no_nul(path: Path) -> Path:
    # accepted, a NUL would only fail when the file is opened: a traceback instead of one line here
    if "\x00" in str(path):
        raise ValueError("a path cannot contain a NUL character")
    return path


#: a file or folder named in the settings
SettingPath = Annotated[Path, AfterValidator(_no_nul)]
#: seconds a pending transaction must outlive the issuer time-out before it counts as in doubt
IN_DOUBT_MARGIN_S = 2.0


class IssuerTls(BaseModel):
    """TLS on the link to one issuer (`[issuers.tls]`; an empty table: TLS with the system's trusted CAs)."""

    model_config = ConfigDict(extra="forbid")

    ca: SettingPath | None = Field(
        default=None, description="CA certificate(s), PEM, that sign the issuer's; default: the system's"
    )
    cert: SettingPath | None = Field(default=None, description="the host's client certificate chain, PEM")
    key: SettingPath | None = Field(default=None, description="its unencrypted private key, PEM")
    server_name: str | None = Field(
        default=None, min_length=1, max_length=255, description="the name the issuer's certificate carries"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> IssuerTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together: give both or neither")
        return self


class IssuerConfig(BaseModel):
    """One issuing bank as the acquirer host sees it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    bins: list[str] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    zpk: SecretStr = Field(description="zone PIN key, clear hex (test keys) — 32 hex")
    zak: SecretStr | None = Field(
        default=None, description="zone MAC key, clear hex — 32 hex; required when mac = true"
    )
    mac: bool = True
    kind: str = Field(default="debit", pattern="^(debit|credit|mixed)$")
    stand_in_max_fen: int | None = Field(
        default=None, ge=0, description="stand-in: approve up to this per transaction while the link is down"
    )
    stand_in_card_daily_fen: int | None = Field(default=None, ge=0, description="stand-in: per card per day")
    tls: IssuerTls | None = Field(default=None, description="TLS on the link; absent: plain TCP")

    @field_validator("zpk", "zak")
    @classmethod
    def _key_is_hex32(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not re.fullmatch(_HEX32, key.get_secret_value()):
            raise ValueError("must be 32 hex digits (a double-length 3DES key)")  # never echo the key
        return key

    @model_validator(mode="after")
    def _mac_needs_a_zak(self) -> IssuerConfig:
        if self.mac and self.zak is None:
            raise ValueError(
                f"issuer {self.name!r}: zak is required when mac = true (the zone MAC key, 32 hex digits);"
                " set mac = false for an issuer that uses no MACs"
            )
        return self

    @field_validator("bins")
    @classmethod
    def _bins_are_digits(cls, bins: list[str]) -> list[str]:
        for number, prefix in enumerate(bins, 1):
            if not (prefix.isascii() and prefix.isdigit()) or not 1 <= len(prefix) <= 11:
                raise ValueError(f"BIN prefix {number} must be 1-11 digits")  # not echoed: a key pasted here?
        return bins


class Settings(BaseSettings):
    """Every knob of posgate. Names map to `POSGATE_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="POSGATE_", extra="forbid", toml_file="posgate.toml")

    env: str = Field(default="development", pattern="^(development|test|production)$")
    data_dir: SettingPath = Path("posgate-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite in the data directory"
    )
    listen_host: str = "127.0.0.1"
    pos_port: int = Field(default=5000, ge=0, le=65535)
    console_port: int = Field(default=8000, ge=0, le=65535)
    ops_enabled: bool = Field(
        default=True, description="`posgate up` and `posgate host` serve /healthz, /readyz and /metrics"
    )
    ops_host: str = Field(default="127.0.0.1", description="address of the operations port (loopback)")
    ops_port: int = Field(default=9180, ge=0, le=65535, description="operations port (0: any free port)")
    ops_saf_ready_max: int = Field(
        default=1000, ge=1, description="/readyz fails while this many SAF entries or more wait"
    )
    console_tls_cert: SettingPath | None = Field(
        default=None, description="console and REST API TLS: certificate chain (PEM); absent: plain HTTP"
    )
    console_tls_key: SettingPath | None = Field(
        default=None, description="console and REST API TLS: private key"
    )
    console_hsts_max_age_s: int = Field(
        default=31_536_000,
        ge=0,
        le=63_072_000,
        description="with console TLS: Strict-Transport-Security max-age (0: no header)",
    )
    issuer_ports: Annotated[list[Annotated[int, Field(ge=0, le=65535)]], NoDecode] = Field(
        default_factory=lambda: [6001, 6002]
    )
    issuer_sim_tls_cert: SettingPath | None = Field(
        default=None, description="issuer simulator TLS: certificate chain (PEM) every bank serves"
    )
    issuer_sim_tls_key: SettingPath | None = Field(
        default=None, description="issuer simulator TLS: private key"
    )
    issuer_sim_tls_client_ca: SettingPath | None = Field(
        default=None, description="issuer simulator TLS: CA(s) that must sign the acquirer's certificate"
    )
    timezone: str = Field(default="Asia/Shanghai", description="acquirer local time for fields 12/13/15")
    risk_rules: str = Field(
        default="default",
        max_length=1024,
        description="inline risk rules (docs/risk.md): 'default' (the shipped rule set), 'lists' (block/"
        "allow/watch lists only), a rule-set TOML file, or 'off'",
    )
    risk_shadow_rules: str | None = Field(
        default=None,
        max_length=1024,
        description="a candidate rule set ('default' or a TOML file) evaluated and recorded beside the live"
        " one, never acting (shadow mode)",
    )
    acquirer_id: str = Field(default="49990000", pattern=r"^\d{1,11}$")
    issuer_timeout_s: float = Field(default=5.0, gt=0, le=120)
    issuer_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    echo_interval_s: float = Field(default=30.0, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    saf_retry_s: float = Field(default=5.0, gt=0, description="store-and-forward reversal retry interval")
    stan_block_max: int = Field(
        default=64, ge=1, le=10_000, description="most network STANs a host node takes from the store at once"
    )
    stan_block_max_age_s: float = Field(
        default=60.0, gt=0, le=3600, description="a node drops a block of network STANs older than this"
    )
    in_doubt_after_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="a transaction still pending this long after it arrived was left by a host that died:"
        " a host node reverses it (at least issuer_timeout_s + 2)",
    )
    recovery_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="how often each host node looks for transactions in doubt"
    )
    max_frame_bytes: int = Field(default=2048, ge=64, le=65535)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    pos_frame_deadline_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="a POS frame must arrive whole within this many seconds of its first byte",
    )
    pos_max_connections: int = Field(default=2000, ge=1, le=1_000_000)
    pos_max_connections_per_source: int = Field(default=100, ge=1, le=1_000_000)
    pos_max_in_flight: int = Field(
        default=8, ge=1, le=4096, description="requests of one connection being handled at once"
    )
    pos_max_in_flight_per_source: int = Field(
        default=16, ge=1, le=100_000, description="requests of one source address being handled at once"
    )
    pos_tls_cert: SettingPath | None = Field(
        default=None, description="POS port TLS: certificate chain (PEM)"
    )
    pos_tls_key: SettingPath | None = Field(
        default=None, validate_default=True, description="POS port TLS: private key (PEM)"
    )
    pos_tls_client_ca: SettingPath | None = Field(
        default=None, description="CA(s) that sign terminal certificates"
    )
    pos_tls_client_auth: Literal["none", "optional", "required"] = Field(
        default="none", validate_default=True
    )
    terminal_cache_s: float = Field(
        default=1.0, ge=0, le=60, description="how long the host trusts a terminal record it read (0: never)"
    )
    db_threads: int = Field(default=8, ge=1, le=64)
    max_amount_fen: int = Field(
        default=50_000_000,
        ge=1,
        le=999_999_999_999,
        description="per-transaction ceiling of field 4 (fen); above it the host answers 61",
    )
    sign_in_limit: int = Field(
        default=10, ge=1, le=10_000, description="sign-ins per TID per window; above it the host answers 65"
    )
    sign_in_window_s: float = Field(default=60.0, gt=0, le=86_400, description="the sign-in limit's window")
    master_key_reload_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="how often a running process looks whether master.key changed (a master key rotation)",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or CIDRs of reverse proxies whose X-Forwarded-For the console believes",
    )
    login_max_failures: int = Field(
        default=5, ge=1, le=1000, description="console logins per username and address per window"
    )
    login_max_failures_per_address: int = Field(
        default=20, ge=1, le=100_000, description="console logins per address across usernames per window"
    )
    login_window_s: float = Field(
        default=300.0, ge=1, le=86_400, description="the console login limits' window (and lockout)"
    )
    login_hash_workers: int = Field(
        default=1, ge=1, le=64, description="password hashes the console computes at once"
    )
    login_hash_queue: int = Field(
        default=8, ge=1, le=10_000, description="password checks running or waiting; beyond: 503"
    )
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="largest console request body of a signed-in caller (413 beyond)",
    )
    max_anonymous_request_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        le=1024 * 1024,
        description="largest request body before sign-in (the login form)",
    )
    issuers: list[IssuerConfig] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one escaped line per event; json: one JSON object per line"
    )
    wallet_sim_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [6101, 6102, 6103],
        description="wallet provider simulators' ports: WeChat Pay, Alipay, UnionPay QR (0: any free port)",
    )
    wallet_urls: dict[str, str] = Field(
        default_factory=dict,
        description='base URL of each real wallet provider, e.g. {"wechat": "https://api.mch.weixin.qq.com"}'
        " (a provider not named here is reached at its simulator, wallet_sim_ports)",
    )
    wallet_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="time-out of one call to a wallet provider (then query)"
    )

    @field_validator("issuer_ports", "wallet_sim_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not all(part.isascii() and part.isdigit() for part in parts):
                raise ValueError("must be port numbers separated by commas")  # the value is not echoed
            return [int(part) for part in parts]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, proxies: list[str]) -> list[str]:
        for number, text in enumerate(proxies, 1):
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"entry {number} is not an IP address or CIDR network") from None
        return proxies

    @field_validator("wallet_urls")
    @classmethod
    def _wallet_urls(cls, urls: dict[str, str]) -> dict[str, str]:
        for provider, url in urls.items():
            if provider not in ("wechat", "alipay", "unionpay"):
                raise ValueError(f"{provider[:20]!r} is not a wallet provider (wechat, alipay, unionpay)")
            if not url.startswith("https://") and not url.startswith(
                ("http://127.0.0.1", "http://localhost")
            ):
                raise ValueError(f"{provider}: a provider is reached over https:// (http only on loopback)")
        return urls

    @field_validator("wallet_sim_ports")
    @classmethod
    def _three_wallet_ports(cls, ports: list[int]) -> list[int]:
        if len(ports) != 3 or any(not 0 <= port <= 65535 for port in ports):
            raise ValueError("three ports (WeChat Pay, Alipay, UnionPay QR), each 0–65535")
        return ports

    @model_validator(mode="after")
    def _issuer_sim_tls_is_whole(self) -> Settings:
        if (self.issuer_sim_tls_cert is None) != (self.issuer_sim_tls_key is None):
            raise ValueError("issuer_sim_tls_cert and issuer_sim_tls_key go together: give both or neither")
        if self.issuer_sim_tls_client_ca is not None and self.issuer_sim_tls_cert is None:
            raise ValueError("issuer_sim_tls_client_ca needs issuer_sim_tls_cert and issuer_sim_tls_key")
        return self

    @model_validator(mode="after")
    def _console_tls_is_whole(self) -> Settings:
        if (self.console_tls_cert is None) != (self.console_tls_key is None):
            raise ValueError("console_tls_cert and console_tls_key go together: give both or neither")
        return self

    @property
    def console_tls(self) -> bool:
        """Whether the console and the REST API are served over HTTPS."""
        return self.console_tls_cert is not None

    @field_validator("pos_tls_key")
    @classmethod
    def _tls_key_goes_with_cert(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if (info.data.get("pos_tls_cert") is None) != (key is None):
            raise ValueError("pos_tls_cert and pos_tls_key go together: give both or neither")
        return key

    @field_validator("pos_tls_client_auth")
    @classmethod
    def _client_auth_has_what_it_needs(cls, mode: str, info: ValidationInfo) -> str:
        client_ca = info.data.get("pos_tls_client_ca")
        if info.data.get("pos_tls_cert") is None and (client_ca is not None or mode != "none"):
            raise ValueError("pos_tls_client_ca and pos_tls_client_auth need pos_tls_cert and pos_tls_key")
        if mode != "none" and client_ca is None:
            raise ValueError(f"pos_tls_client_auth = {mode!r} needs pos_tls_client_ca")
        return mode

    @model_validator(mode="after")
    def _in_doubt_after_the_issuer_time_out(self) -> Settings:
        if self.in_doubt_after_s < self.issuer_timeout_s + IN_DOUBT_MARGIN_S:
            raise ValueError(
                f"in_doubt_after_s ({self.in_doubt_after_s:g}) must be at least issuer_timeout_s"
                f" ({self.issuer_timeout_s:g}) + {IN_DOUBT_MARGIN_S:g}: a host still waiting for the"
                " issuer must not see its transaction reversed"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        explicit = os.environ.get("POSGATE_CONFIG")
        toml_path = Path(explicit or "posgate.toml")
        if explicit and not toml_path.is_file():
            raise ConfigError(f"invalid configuration: POSGATE_CONFIG names {toml_path}, which is not a file")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, else SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'posgate.sqlite').resolve()}"

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"


_MAX_ERRORS_SHOWN = 3
_MAX_KEY_SHOWN = 24
_LONG_DIGITS = re.compile(r"\d{13,}")
_KEY_LIKE = re.compile(r"[0-9A-Fa-f]{13,}")  # a PAN, or part of a key
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def load_settings(**overrides: Any) -> Settings:
    """`Settings` from `overrides`, the environment and the TOML file; `ConfigError` (one line) if invalid.

    >>> load_settings(pos_port=70000)
    Traceback (most recent call last):
    ...
    posgate.errors.ConfigError: invalid configuration: pos_port: Input should be less than or equal to 65535
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid configuration: {_toml_path()} is not valid TOML: {_toml_problem(exc)}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"invalid configuration: {_toml_path()} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"invalid configuration: cannot read {_toml_path()}: {exc.strerror}") from None
    except SettingsError as exc:  # e.g. POSGATE_ISSUERS that is not JSON; its text names the field only
        raise ConfigError(f"invalid configuration: {_one_line(str(exc).split(' from source ')[0])}") from None


def _toml_path() -> str:
    return os.environ.get("POSGATE_CONFIG") or "posgate.toml"


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message without what it quotes of the file's keys: a table declared twice or an inline
    table extended names its keys, and a key pasted in the wrong place may be a ZAK or a PAN. Runs of 13 or
    more hex digits become `…`, and a quoted key is cut to 24 characters.

    >>> _toml_problem(tomllib.TOMLDecodeError("Cannot declare ('0123456789ABCDEF0123456789ABCDEF',) twice"))
    "Cannot declare ('…',) twice"
    """
    return _one_line(_QUOTED.sub(_shortened_quote, _KEY_LIKE.sub("…", str(exc))))


def _shortened_quote(match: re.Match[str]) -> str:
    quoted = match[0]
    return quoted if len(quoted) <= _MAX_KEY_SHOWN + 2 else f"{quoted[: _MAX_KEY_SHOWN + 1]}…{quoted[0]}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _where(loc: tuple[int | str, ...]) -> str:
    """A setting's path, e.g. `issuers.0.port`; an unknown key from the file is shown shortened and escaped
    (it is the file's text: it may be long, hold a newline, or be a key pasted in the wrong place)."""
    parts = []
    for part in loc:
        text = str(part)
        if not (text.isascii() and text.isprintable()) or len(text) > _MAX_KEY_SHOWN:
            text = repr(text[:_MAX_KEY_SHOWN] + ("…" if len(text) > _MAX_KEY_SHOWN else ""))
        text = _LONG_DIGITS.sub("…", text)  # 13 digits or more could be a PAN
        parts.append(text)
    return ".".join(parts) or "settings"


def _describe(exc: ValidationError) -> str:
    """`where: what` for the first errors, without the input values (they may be keys)."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    parts = [f"{_where(error['loc'])}: {_one_line(error['msg'])}" for error in errors[:_MAX_ERRORS_SHOWN]]
    more = len(errors) - _MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
