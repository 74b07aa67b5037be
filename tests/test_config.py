"""Bad configuration and bad invocation: exit status 2, one clear message naming key/line/file, no traceback."""

from __future__ import annotations

import pytest

from innoverheid.config import Config, load_config, parse_config
from innoverheid.errors import ConfigError

BAD_CONFIGS = [
    # (yaml text, what the message must name)
    ("database: [unclosed\n", "not valid YAML"),
    ("hashtags: innoverheid\n  - x\n", "hashtags"),
    ("\tdatabase: sqlite:///x.db\n", "YAML"),
    ("database: mysql://root@localhost/x\n", "database"),
    ("database: 42\n", "database"),
    ("hashtags: []\n", "hashtags"),
    ("hashtags: ['inno verheid']\n", "hashtags"),
    ("hashtags: {a: 1}\n", "hashtags"),
    ("unknown_key: 1\n", "unknown_key"),
    ("sources:\n  bluesky:\n    enabeld: true\n", "sources.bluesky.enabeld"),
    ("sources:\n  facebook: {enabled: true}\n", "sources.facebook"),
    ("sources:\n  bluesky:\n    enabled: maybe\n", "sources.bluesky.enabled"),
    ("sources:\n  bluesky:\n    page_size: 500\n", "sources.bluesky.page_size"),
    ("sources:\n  mastodon:\n    instances: [mastodon.social]\n", "sources.mastodon.instances"),
    ("sources:\n  mastodon:\n    instances: https://mastodon.social\n", "sources.mastodon.instances"),
    ("sources:\n  mastodon:\n    access_token_env: 'my token'\n", "sources.mastodon.access_token_env"),
    ("sources:\n  x:\n    monthly_cap: -5\n", "sources.x.monthly_cap"),
    ("sources:\n  x:\n    monthly_cap: lots\n", "sources.x.monthly_cap"),
    ("schedule:\n  nightly: '61 3 * * *'\n", "schedule.nightly"),
    ("schedule:\n  nightly: 'every night'\n", "schedule.nightly"),
    ("schedule:\n  timezone: Europe/Amsterdamm\n", "schedule.timezone"),
    ("schedule:\n  jobs:\n    weekly: {cron: '0 8 * *'}\n", "schedule.jobs.weekly.cron"),
    ("schedule:\n  jobs:\n    weekly: {cron: '0 8 * * 1', steps: [dance]}\n", "schedule.jobs.weekly.steps"),
    ("classifier:\n  min_confidence: 1.5\n", "classifier.min_confidence"),
    ("classifier:\n  min_confidence: high\n", "classifier.min_confidence"),
    ("report:\n  language: fr\n", "report.language"),
    ("report:\n  top_ideas: 0\n", "report.top_ideas"),
    ("privacy:\n  retention_days: 0\n", "privacy.retention_days"),
    ("harvest:\n  timeout: 0\n", "harvest.timeout"),
    ("harvest:\n  max_retries: -1\n", "harvest.max_retries"),
    ("logging:\n  format: xml\n", "logging.format"),
    ("- just\n- a list\n", "mapping"),
    ("alerts:\n  smtp_port: twenty-five\n", "alerts.smtp_port"),
]


@pytest.mark.parametrize("text,named", BAD_CONFIGS)
def test_bad_config_exits_2_with_a_message_naming_the_problem(text, named, workdir, run_cli):
    (workdir / "config.yaml").write_text(text, encoding="utf-8")
    result = run_cli("status")
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert "config.yaml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_all_problems_are_reported_at_once_with_lines():
    text = "database: nope\nreport:\n  language: fr\nschedule:\n  timezone: Nowhere/Land\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    msg = str(info.value)
    assert "3 problem(s)" in msg
    assert "key 'database', line 1" in msg
    assert "key 'report.language', line 3" in msg
    assert "key 'schedule.timezone', line 5" in msg


SECRETS = ["ghp_4f8a9c2e1b7d6f3a0c5e8b2d9f1a7c3e6b0d4f8a", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
           "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBkKG5E2XzMDjRfl76ZC9Ub0wnz4XsNiRVBChTYbJcE3F",
           "xoxb-1234-5678-abcdefghijkl", "s3cR3tPassw0rdValue99"]


@pytest.mark.parametrize("secret", SECRETS)
def test_a_pasted_secret_under_an_env_key_is_refused_without_echoing_it(secret, workdir, run_cli):
    (workdir / "config.yaml").write_text(f"sources:\n  x:\n    bearer_token_env: '{secret}'\n", encoding="utf-8")
    result = run_cli("status")
    assert result.exit_code == 2
    assert "sources.x.bearer_token_env" in result.stderr
    assert "NAME of an environment variable" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_no_config_at_all_means_defaults(workdir):
    cfg = load_config()  # workdir sets INNOVERHEID_DATABASE_URL, which overrides only 'database'
    assert cfg.model_dump(exclude={"database"}) == Config(base_dir=".").model_dump(exclude={"database"})
    assert cfg.hashtags == ["innoverheid"] and cfg.classifier.model is None


def test_innoverheid_config_names_the_file(workdir, monkeypatch, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "mine.yaml").write_text("hashtags: [Charter2013]\n")
    monkeypatch.setenv("INNOVERHEID_CONFIG", str(other / "mine.yaml"))
    assert load_config().hashtags == ["charter2013"]


def test_database_url_from_the_environment_wins(workdir, monkeypatch):
    (workdir / "config.yaml").write_text("database: sqlite:///from-file.db\n")
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", "sqlite:///from-env.db")
    assert load_config().database == "sqlite:///from-env.db"


def test_a_bad_database_url_in_the_environment_is_named(workdir, monkeypatch, run_cli):
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", "oracle://x")
    result = run_cli("status")
    assert result.exit_code == 2 and "INNOVERHEID_DATABASE_URL" in result.stderr


def test_a_given_config_path_that_is_missing_is_an_error(workdir, run_cli):
    result = run_cli("--config", "nope.yaml", "status")
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr and "does not exist" in result.stderr


def test_innoverheid_config_pointing_nowhere_is_an_error(workdir, monkeypatch, run_cli):
    monkeypatch.setenv("INNOVERHEID_CONFIG", str(workdir / "missing.yaml"))
    result = run_cli("status")
    assert result.exit_code == 2 and "INNOVERHEID_CONFIG" in result.stderr


def test_an_unreachable_database_folder_is_named(workdir, monkeypatch, run_cli):
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", f"sqlite:///{workdir}/no/such/folder/x.db")
    result = run_cli("status")
    assert result.exit_code == 2
    assert "no/such/folder" in result.stderr and "does not exist" in result.stderr


def test_a_config_that_is_not_utf8_is_named(workdir, run_cli):
    (workdir / "config.yaml").write_bytes(b"hashtags: [caf\xe9]\n")
    result = run_cli("status")
    assert result.exit_code == 2 and "UTF-8" in result.stderr


BAD_INVOCATIONS = [
    ("frobnicate",),
    ("export",),
    ("export", "--out", "x.csv", "--format", "docx"),
    ("export", "--out", "x.csv", "--theme", "cultuur"),
    ("export", "--out", "x.csv", "--since", "last tuesday"),
    ("export", "--out", "x.csv", "--min-confidence", "2"),
    ("export", "--out", "no/such/dir/x.csv"),
    ("import",),
    ("import", "missing.csv"),
    ("harvest", "--source", "myspace"),
    ("status", "--bogus"),
]


@pytest.mark.parametrize("args", BAD_INVOCATIONS, ids=lambda a: " ".join(a))
def test_bad_invocation_exits_2_without_traceback(args, workdir, run_cli):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip()
