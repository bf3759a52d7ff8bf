"""Settings: flags and `GAVEL_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gavel.sources import DEFAULT_MAX_RULES_FILE_BYTES, MAX_RULES_FILE_BYTES_CEILING

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAVEL_", extra="ignore")

    grpc_addr: str = "127.0.0.1:50051"
    http_addr: str = "127.0.0.1:8080"
    data_dir: Path = Path(".gavel")
    database_url: str = ""  # default: SQLite file in data_dir
    rules: Path = Path("rules")
    rate_limit_per_minute: int = Field(60_000, ge=0)
    token_ttl_seconds: int = Field(300, ge=1, le=86_400)
    token_issuer: str = "gavel"
    token_audience: str = "gavel"
    retired_key_retention_days: int = Field(90, ge=1)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    max_rules_file_bytes: int = Field(DEFAULT_MAX_RULES_FILE_BYTES, ge=1, le=MAX_RULES_FILE_BYTES_CEILING)
    max_streams_per_tenant: int = Field(10_000, ge=0)  # open server streams per tenant + environment; 0: no limit
    max_decisions_per_stream: int = Field(1_000_000, ge=0)  # requests one DecideStream accepts; 0: no limit
    compile_timeout_seconds: float = Field(60.0, gt=0)  # one policy compile (validate, publish, explain, replay)
    compile_workers: int = Field(2, ge=1)  # policy compiles running at once, all tenants together
    max_compiles_per_tenant: int = Field(1, ge=0)  # policy compiles one tenant may run at once; 0: no limit
    drain_seconds: float = Field(10.0, ge=0)
    log_level: str = "INFO"
    watch: bool = False  # reload --rules on change
    signing_keys_file: Path | None = None  # default: <data_dir>/signing-keys.json; replicas share one file
    webhook_allow_private: bool = False  # let webhooks target loopback, private and link-local addresses
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_retry_base_seconds: float = Field(1.0, gt=0)
    webhook_retry_cap_seconds: float = Field(600.0, gt=0)
    webhook_max_attempts: int = Field(10, ge=1)
    webhook_per_endpoint: int = Field(4, ge=1)
    require_signed_bundles: bool = False
    bundle_keys: Path | None = None  # a JWKS file of the publishers whose signatures PublishBundle accepts
    sod_role_conflicts: str = ""  # "ap_clerk:vendor_admin,…": a key with the first role may not approve for the second
    checkpoint_every_seconds: float = Field(10.0, gt=0)
    checkpoint_every_events: int = Field(1000, ge=1)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        name = v.strip().upper()
        if name not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not `{v}`")
        return name

    @field_validator("grpc_addr", "http_addr")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return v

    @property
    def sod_conflicts(self) -> frozenset[tuple[str, str]]:
        pairs = [p.strip() for p in self.sod_role_conflicts.split(",") if p.strip()]
        out = set()
        for pair in pairs:
            held, sep, task_role = pair.partition(":")
            if not sep or not held.strip() or not task_role.strip():
                raise ValueError(f"sod_role_conflicts: `{pair}` is not `held_role:task_role`")
            out.add((held.strip(), task_role.strip()))
        return frozenset(out)

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'gavel.db').resolve()}"
