from __future__ import annotations

import pytest

from zapline.config import DEV_JWT_SECRET, ConfigError, load_settings


def test_defaults_in_dev() -> None:
    s = load_settings({"ZAPLINE_ENV": "dev"})
    assert (s.port, s.socket_port, s.host) == (3333, 3334, "127.0.0.1")
    assert s.database_url == "sqlite:///./zapline.db"
    assert s.jwt_secret == DEV_JWT_SECRET
    assert s.demo is True and s.log_format == "text"
    assert s.socket_url() == "http://127.0.0.1:3334"


def test_prod_refuses_to_start_without_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET is not set"):
        load_settings({})
    assert load_settings({}, require_secret=False).jwt_secret == ""


def test_database_url_precedence_and_redaction() -> None:
    env = {
        "JWT_SECRET": "s",
        "DATABASE_URL": "postgresql://a:pw@h/db",
        "ZAPLINE_DATABASE_URL": "sqlite:///x.db",
    }
    assert load_settings(env).database_url == "sqlite:///x.db"
    s = load_settings({"JWT_SECRET": "s", "DATABASE_URL": "postgresql://bob:secret@db:5432/z"})
    assert "secret" not in s.describe_database() and "bob" in s.describe_database()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZAPLINE_PORT", "eighty"),
        ("ZAPLINE_PING_INTERVAL", "soon"),
        ("ZAPLINE_WS_COMPRESSION", "maybe"),
        ("ZAPLINE_ENV", "staging"),
        ("ZAPLINE_LOG_LEVEL", "loud"),
        ("ZAPLINE_COMMIT_INTERVAL", "-0.001"),
        ("ZAPLINE_COMMIT_INTERVAL", "5"),
        ("ZAPLINE_COMMIT_INTERVAL", "nan"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"JWT_SECRET": "s", name: value})


def test_commit_interval_defaults_to_5_ms_and_takes_0() -> None:
    assert load_settings({"JWT_SECRET": "s"}).commit_interval == 0.005
    assert load_settings({"JWT_SECRET": "s", "ZAPLINE_COMMIT_INTERVAL": "0"}).commit_interval == 0


def test_engine_options_follow_settings() -> None:
    s = load_settings(
        {
            "JWT_SECRET": "s",
            "ZAPLINE_PING_INTERVAL": "5",
            "ZAPLINE_WS_COMPRESSION": "1",
            "ZAPLINE_CORS_ORIGINS": "http://a, http://b",
        }
    )
    opts = s.engine_options()
    assert opts.ping_interval == 5.0 and opts.compression is True
    assert opts.cors_origins == ("http://a", "http://b")


def test_public_socket_url_override() -> None:
    s = load_settings({"JWT_SECRET": "s", "ZAPLINE_PUBLIC_SOCKET_URL": "https://desk.example"})
    assert s.socket_url() == "https://desk.example"


def test_cors_defaults_to_the_api_origin() -> None:
    s = load_settings({"JWT_SECRET": "s", "ZAPLINE_PORT": "4000"})
    assert s.engine_options().cors_origins == ("http://127.0.0.1:4000", "http://localhost:4000")
    star = load_settings({"JWT_SECRET": "s", "ZAPLINE_CORS_ORIGINS": "*"})
    assert star.engine_options().cors_origins == ("*",)


def test_media_settings_and_where_the_media_directory_is() -> None:
    s = load_settings({"ZAPLINE_ENV": "dev"})
    assert (s.media_cache_mb, s.media_timeout) == (256.0, 30.0)
    assert s.media_directory() == "./zapline-media"
    assert (
        load_settings(
            {"ZAPLINE_ENV": "dev", "DATABASE_URL": "sqlite:////var/z/desk.db"}
        ).media_directory()
        == "/var/z/desk-media"
    )
    pg = load_settings({"ZAPLINE_ENV": "dev", "DATABASE_URL": "postgresql://u@h/db"})
    assert pg.media_directory() == "./zapline-media"
    given = load_settings(
        {"ZAPLINE_ENV": "dev", "ZAPLINE_MEDIA_DIR": "/srv/m", "ZAPLINE_MEDIA_CACHE_MB": "0.5"}
    )
    assert (given.media_directory(), given.media_cache_mb) == ("/srv/m", 0.5)
    with pytest.raises(ConfigError, match="ZAPLINE_MEDIA_CACHE_MB"):
        load_settings({"ZAPLINE_ENV": "dev", "ZAPLINE_MEDIA_CACHE_MB": "lots"})


def test_audit_retention_is_a_duration_in_days_by_default() -> None:
    base = {"JWT_SECRET": "s"}
    assert load_settings(base).audit_retention == 90 * 86400
    for raw, seconds in (
        ("30", 30 * 86400),
        ("12h", 43200),
        ("45s", 45),
        ("0", 0),
        ("1.5d", 129600),
    ):
        assert load_settings({**base, "ZAPLINE_AUDIT_RETENTION": raw}).audit_retention == seconds
    for bad in ("soon", "-1d", "d"):
        with pytest.raises(ConfigError, match="ZAPLINE_AUDIT_RETENTION"):
            load_settings({**base, "ZAPLINE_AUDIT_RETENTION": bad})
