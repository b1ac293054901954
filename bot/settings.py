"""All settings in one validated model: `SHOPKEEP_*` environment variables and `shopkeep.toml`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bot.errors import ConfigError

CONFIG_FILE_ENV = "SHOPKEEP_CONFIG"
SECRET_FIELDS = ("discord_token", "telegram_token", "lm_openai_api_key", "store_key",
                 "store_secret", "store_token")


class Settings(BaseSettings):
    """Shopkeep's settings. Every field is `SHOPKEEP_<NAME>` in the environment (tokens are
    `DISCORD_TOKEN` and `TELEGRAM_TOKEN`), or `<name> = ...` in `shopkeep.toml`."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPKEEP_", extra="forbid", populate_by_name=True, validate_default=True
    )

    # Storage
    redis_url: str | None = Field(
        None, description="Redis/Valkey URL; unset starts an embedded Redis under data_dir."
    )
    redis_max_connections: int = Field(
        200, ge=4, le=10_000,
        description="Redis connections per process; when all are busy a command waits "
                    "(up to 20 s) for one instead of failing.")
    data_dir: Path = Field(Path("var"), description="Where the embedded Redis and caches live.")
    merchant: str = Field("default", description="The merchant this deployment serves: direct "
                          "messages, SHOPKEEP_COMMUNITIES and the command line act for it.")
    demo_shop: bool = Field(True, description="Load the demo shop when the store is empty.")

    # Language models
    lm_backend: Literal["local", "remote", "openai"] = Field(
        "local", description="local: in-process engine; remote: lm-worker processes over Redis "
        "Streams; openai: an OpenAI-compatible HTTP server."
    )
    lm_model: str | None = Field(None, description="GGUF file or Hugging Face model folder.")
    embed_model: str | None = Field(None, description="Sentence-embedding model folder.")
    lm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 where the CPU supports it, float32 otherwise; "
        "float16 on CUDA.")
    lm_threads: int | None = Field(None, ge=1, description="Torch threads (default: cores).")
    lm_max_batch: int = Field(64, ge=1, le=256, description="Requests decoded together (the "
                              "KV-cache budget also limits how many join).")
    lm_max_queue: int = Field(256, ge=1, description="Queued requests before new ones are "
                              "answered \"busy, try again shortly\".")
    lm_timeout_s: float = Field(30.0, gt=0, description="Longest a member waits for the model.")
    lm_openai_url: str | None = Field(None, description="Base URL, e.g. http://vllm:8000/v1.")
    lm_openai_model: str = Field("default", description="Model name sent to the OpenAI-"
                                 "compatible server.")
    lm_openai_api_key: SecretStr | None = Field(None, description="Bearer key for that server "
                                                "(environment only).")

    # Platforms
    discord_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DISCORD_TOKEN", "SHOPKEEP_DISCORD_TOKEN"),
        description="Bot token; when set, `shopkeep run` connects to Discord.")
    discord_api_url: str = Field("https://discord.com/api/v10", description="Discord REST "
                                 "base (tests point it at a local stand-in).")
    discord_gateway_url: str = Field("wss://gateway.discord.gg/", description="Discord "
                                     "gateway WebSocket.")
    discord_shards: int | None = Field(None, ge=1, description="Shard count; set to run an "
                                       "AutoShardedClient.")
    telegram_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TELEGRAM_TOKEN", "SHOPKEEP_TELEGRAM_TOKEN"),
        description="Bot token from @BotFather; when set, `shopkeep run` connects to Telegram.")
    telegram_api_url: str = Field("https://api.telegram.org/bot", description="Bot API base; "
                                  "the token is appended.")
    telegram_mode: Literal["polling", "webhook"] = Field(
        "polling", description="polling: long polling; webhook: Telegram calls "
        "telegram_webhook_url.")
    telegram_webhook_url: str | None = Field(None, description="Public https address for "
                                             "webhook mode; its path is the local route.")
    telegram_webhook_port: int = Field(8443, ge=1, le=65535, description="Local port of the "
                                       "webhook server.")
    admin_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accounts always treated as admins, as platform:user_id "
        "(e.g. telegram:12345).",
    )
    communities: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Communities approved at start for the merchant, comma-separated: "
        "telegram:<chat id>, discord:<guild id>. Others get nothing until approved "
        "(/setup CODE, shopkeep communities approve).",
    )

    # Behaviour
    timezone: str = Field("UTC", description="Default time zone for schedules, stats days and "
                          "the digest.")
    member_messages_per_minute: int = Field(6, ge=1, description="Questions one member may "
                                            "ask per minute.")
    community_messages_per_minute: int = Field(60, ge=1, description="Questions a community "
                                               "may ask per minute.")
    community_daily_tokens: int = Field(200_000, ge=1, description="Model tokens a community "
                                        "may use per day.")
    member_daily_tokens: int = Field(20_000, ge=1, description="Model tokens one member's "
                                     "direct messages may use per day (each member has "
                                     "their own budget).")
    profile_retention_days: int = Field(365, ge=1, description="Profiles of members idle "
                                        "longer expire.")
    max_message_chars: int = Field(4000, ge=100, description="Longer inbound messages are "
                                   "cut before anything reads them; longer commands are "
                                   "refused, changing nothing.")

    # Answers (issue 5): how replies are made, remembered and filtered
    reply_mode: Literal["auto", "quote", "generate"] = Field(
        "quote", description="quote: answer with the best source's own text (measured more "
        "faithful and faster with the default model); auto: quote confident matches and let "
        "the model phrase the rest; generate: always generate (post-checked against the "
        "sources, quoting when a check fails).",
    )
    reply_max_new_tokens: int = Field(96, ge=16, le=512, description="Longest generated "
                                      "answer, in tokens.")
    reply_generate_deadline_s: float = Field(
        3.0, gt=0, description="Longest wait for a generated answer before quoting the source "
        "instead.",
    )
    memory_turns: int = Field(3, ge=0, le=20, description="Exchanges remembered per member "
                              "and channel.")
    memory_ttl_s: int = Field(1800, ge=60, description="Seconds a conversation is remembered.")
    max_question_chars: int = Field(1000, ge=50, description="Longer questions are cut.")
    deny_list: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Words never sent in a reply (comma-separated in the environment).",
    )

    # Profiles (issue 6): ingestion queue, summaries
    profile_queue_max: int = Field(5000, ge=1, description="Messages queued in memory for "
                                   "profiles; more spill to a Redis stream, none are dropped.")
    profile_batch: int = Field(64, ge=1, le=1024, description="Messages embedded per batch.")
    profile_summary_every: int = Field(8, ge=1, description="New messages before a member's "
                                       "interest summary is rewritten.")
    profile_summary_interval_s: float = Field(60.0, gt=0, description="Seconds between "
                                              "summary/retention rounds.")

    # Campaigns and content posts (issue 11)
    campaign_misfire_grace_s: int = Field(300, ge=1, description="A run found late (process "
                                          "down at its time) still posts within this many "
                                          "seconds; later it is recorded as missed.")
    campaign_coalesce: bool = Field(True, description="After downtime, post one run for the "
                                    "missed ones instead of each of them.")
    campaign_poll_s: float = Field(5.0, gt=0, le=300, description="How often each process "
                                   "looks for runs that other processes scheduled.")
    campaign_lock_ttl_s: float = Field(20.0, gt=0, description="Lease of a run's lock, renewed "
                                       "every third of it while the run works: when a "
                                       "process dies mid-run, another takes the run over "
                                       "within about this many seconds.")
    campaign_dm_cap: int = Field(2, ge=0, description="Campaign DMs a member gets at most per "
                                 "campaign_dm_cap_days.")
    campaign_dm_cap_days: float = Field(7.0, gt=0, description="Window of the DM cap, in days.")
    campaign_generation_attempts: int = Field(3, ge=1, le=10, description="Tries to write an "
                                              "acceptable post before moderators are told.")
    campaign_retry_backoff_s: float = Field(2.0, ge=0, description="First wait between tries; "
                                            "doubles each time.")

    # Operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log "
                                                                     "level.")
    log_json: bool = Field(False, description="JSON log lines with a correlation id per "
                           "message.")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve /healthz, "
                                     "/readyz and /metrics on this port.")

    # Operations: health/metrics server and shutdown (issue 10)
    metrics_host: str = Field("127.0.0.1", description="Address the /healthz, /readyz and "
                              "/metrics server binds to (0.0.0.0 in a container).")
    shutdown_timeout_s: float = Field(20.0, gt=0, le=600, description="Longest a graceful "
                                      "stop may take before the rest is abandoned.")

    # Knowledge: LM-written FAQ phrasings (issue 5)
    faq_paraphrases: int = Field(0, ge=0, le=12, description="Phrasings the LM writes per FAQ "
                                 "entry in the background after an import (0: none; with "
                                 "SmolLM2-135M they measured neutral, so off by default).")
    faq_paraphrase_delay_s: float = Field(60.0, ge=0, le=3600, description="Quiet seconds "
                                          "after a knowledge change before phrasings are "
                                          "written (several imports in a row: one pass).")

    # Growth: referrals, account linking, analytics, FAQ gaps, weekly digest (issue 9)
    referral_stay_days: float = Field(7.0, ge=0, le=365, description="Days an invited member "
                                      "must stay before the referral counts.")
    referral_min_messages: int = Field(3, ge=0, le=1000, description="Messages an invited "
                                       "member must write before the referral counts.")
    referral_telegram_bot: str | None = Field(None, description="The bot's Telegram username, "
                                              "for t.me/<bot>?start=ref_<code> invite links.")
    referral_discord_invite: str | None = Field(None, description="A Discord invite code; "
                                                "/invite on Discord links https://discord.gg/<code>.")
    link_code_ttl_s: int = Field(600, ge=30, le=86_400, description="How long a /link code "
                                 "stays valid.")
    # 0.5 measured on all-MiniLM-L6-v2: paraphrases sit at 0.53-0.82 to each other and
    # higher to their group's centre; different shop questions at 0.5 or less.
    gap_similarity: float = Field(0.5, gt=0, lt=1, description="Cosine similarity to a "
                                  "group's centre above which an unanswered question joins it.")
    gap_max_questions: int = Field(500, ge=1, le=20_000, description="Most recent unanswered "
                                   "questions that /faq gaps clusters.")
    digest_enabled: bool = Field(True, description="Post the weekly digest to moderators.")
    digest_weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="Day the weekly digest posts.")
    digest_hour: int = Field(9, ge=0, le=23, description="Hour (in timezone) the digest posts.")
    digest_channel: str | None = Field(None, pattern=r"^(discord|telegram|console):\S+$",
                                       description="Moderators' channel for the digest, as "
                                       "platform:channel_id (or set it with /digest channel).")

    # Discord adapter (issue 8)
    discord_moderator_roles: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Discord roles (ids or names, comma-separated) whose members are "
        "moderators, besides Manage Server / Manage Messages.",
    )

    # Store connector (issue 20): live catalog and order status
    store_kind: Literal["none", "woocommerce", "shopify"] = Field(
        "none", description="The shop system to connect to; none keeps the CSV catalog.")
    store_url: str | None = Field(None, description="The shop's https address (WooCommerce: "
                                  "the site; Shopify: https://<shop>.myshopify.com).")
    store_key: SecretStr | None = Field(None, description="WooCommerce consumer key, Read "
                                        "access (environment only).")
    store_secret: SecretStr | None = Field(None, description="WooCommerce consumer secret "
                                           "(environment only).")
    store_token: SecretStr | None = Field(None, description="Shopify Admin API access token "
                                          "with read_orders, read_products (environment only).")
    store_api_version: str = Field("2025-07", pattern=r"^\d{4}-\d{2}$", description="Shopify "
                                   "Admin API version.")
    store_ca_file: Path | None = Field(None, description="Extra CA certificates to trust for "
                                       "the store (a staging shop with a private CA).")
    store_timeout_s: float = Field(10.0, gt=0, le=120, description="Longest wait for one "
                                   "store request; failed ones are retried with backoff.")
    store_sync_interval_s: int = Field(3600, ge=0, description="Seconds between catalog syncs "
                                       "from the store (0: only /catalog sync and `shopkeep "
                                       "sync`).")
    order_lookups_per_hour: int = Field(10, ge=1, description="Order lookups one member may "
                                        "make per hour.")
    order_failures_per_hour: int = Field(5, ge=1, description="Unverified lookups of one order "
                                         "number per hour before it is locked for the hour.")
    order_conversation_ttl_s: int = Field(900, ge=60, le=86_400, description="How long an "
                                          "order conversation (and a verified email's hash) "
                                          "is kept.")

    # Web dashboard (issue 21)
    scheduled_jobs: bool = Field(True, description="Fire scheduled campaign runs and the "
                                 "weekly digest in this process (`shopkeep dashboard serve` "
                                 "turns it off: it has no chat adapter to post with).")
    dashboard_port: int | None = Field(None, ge=0, le=65535, description="Serve the "
                                       "moderators' web dashboard from the bot on this port "
                                       "(unset: no dashboard; `shopkeep dashboard serve` runs "
                                       "it alone).")
    dashboard_host: str = Field("127.0.0.1", description="Address the dashboard listens on "
                                "(put a TLS proxy in front of it to serve it beyond this "
                                "machine).")
    dashboard_url: str | None = Field(None, pattern=r"^https?://\S+$", description="The "
                                      "dashboard's public address, used in sign-in links "
                                      "(default: http://dashboard_host:dashboard_port).")
    dashboard_link_ttl_s: int = Field(600, ge=30, le=3600, description="How long a /dashboard "
                                      "sign-in link works (once).")
    dashboard_session_ttl_s: int = Field(28_800, ge=300, le=7 * 86_400, description="How "
                                         "long a dashboard sign-in lasts before a new link is "
                                         "needed.")

    @field_validator("discord_moderator_roles", mode="before")
    @classmethod
    def _split_discord_roles(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(*SECRET_FIELDS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `DISCORD_TOKEN=` left in an env file means "not set", not a token of "".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("communities", mode="before")
    @classmethod
    def _split_communities(cls, value: Any) -> Any:
        from bot.tenancy.communities import COMMUNITY_KEY

        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            bad = [v for v in value if not COMMUNITY_KEY.match(str(v).strip().lower())]
            if bad:
                raise ValueError(f"{bad[0]!r} is not telegram:<chat id> or discord:<guild id>")
            value = [str(v).strip().lower() for v in value]
        return value

    @field_validator("admin_ids", "deny_list", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get(CONFIG_FILE_ENV, "shopkeep.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(_SecretFreeToml(settings_cls, toml_path))
        return tuple(sources)


class _SecretFreeToml(TomlConfigSettingsSource):
    """The TOML file may not hold secrets: they belong in the environment."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        written = {str(k).lower() for k in self.toml_data}
        for name in SECRET_FIELDS:
            if name in written or _env_name(name).lower() in written:
                raise ConfigError(
                    f"{name} must not be written in shopkeep.toml; set it in the environment "
                    f"({_env_name(name)}) instead."
                )
        return data


def _env_name(field_name: str) -> str:
    if field_name in ("discord_token", "telegram_token"):
        return field_name.upper()
    return "SHOPKEEP_" + field_name.upper()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one plain sentence per problem.

    Raises:
        ConfigError: naming the setting, the value given and what is allowed.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    except SettingsError as exc:
        raise ConfigError(f"A setting could not be read: {exc}.") from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = err.get("loc") or ("?",)
        name = str(loc[0])
        field = Settings.model_fields.get(name)
        env = _env_name(name) if field else name
        given = err.get("input")
        allowed = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            lines.append(f"Unknown setting {name!r} in shopkeep.toml.")
            continue
        lines.append(f"Setting {env} has an invalid value {given!r}: {allowed.lower()}.")
    return " ".join(lines)


def settings_table() -> str:
    """The README's settings table, built from the model so that it cannot drift."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        if isinstance(default, Path):
            default = default.as_posix()
        if isinstance(default, bool):
            default = str(default).lower()
        if isinstance(default, list):
            default = ",".join(default)
        shown = f"`{default}`" if default not in (None, "") else "—"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{_env_name(name)}` | {shown} | {meaning} |")
    return "\n".join(rows)
