"""What `status` shows: the state of the database and of the nightly job, gathered once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, select

from innoverheid.config import Config
from storage import Database
from storage.models import HarvestRun, JobRun, Label, ModelRecord, Post


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def posts_this_month(db: Database, source: str, now: datetime | None = None) -> int:
    """Posts a source read this calendar month (UTC): every item the platform returned, kept or
    not, which is what X's monthly cap counts. Runs recorded before n_read existed count what
    they stored."""
    now = now or datetime.now(timezone.utc)
    t = HarvestRun.__table__
    read = case((t.c.n_read > 0, t.c.n_read), else_=t.c.n_new)
    with db.read() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(read), 0)).where(
            t.c.source == source, t.c.started_at >= month_start(now))).scalar_one())


def next_runs(cfg: Config, now: datetime | None = None,
              stored: dict[str, datetime | None] | None = None) -> list[dict[str, Any]]:
    """Next run of each job from the config; `pending` when the job store holds a missed run."""
    from zoneinfo import ZoneInfo

    from scheduler import cron_trigger, job_crons

    tz = ZoneInfo(cfg.schedule.timezone)
    now = (now or datetime.now(timezone.utc)).astimezone(tz)
    out = []
    for name, cron in job_crons(cfg).items():
        fire = cron_trigger(cron, tz).get_next_fire_time(None, now)
        due = (stored or {}).get(name)
        missed = due is not None and due <= now
        out.append({"job": name, "cron": cron, "next": fire.isoformat() if fire else None,
                    "pending": due.astimezone(tz).isoformat() if missed else None,
                    "within_grace": missed and now - due <= timedelta(minutes=cfg.schedule.misfire_grace_minutes)})
    return out


def collect(cfg: Config, db: Database) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    runs, jobs, posts, labels, models = (HarvestRun.__table__, JobRun.__table__, Post.__table__,
                                         Label.__table__, ModelRecord.__table__)
    info: dict[str, Any] = {"database": db.url.split("@")[-1], "now": now.isoformat()}
    with db.read() as conn:
        info["posts"] = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        info["posts_by_source"] = dict(conn.execute(
            select(posts.c.source, func.count()).group_by(posts.c.source)).all())
        labelled = select(labels.c.post_id).distinct()
        info["posts_labelled"] = conn.execute(select(func.count()).select_from(labelled.subquery())).scalar_one()
        info["posts_checked_by_person"] = conn.execute(select(func.count()).select_from(
            select(labels.c.post_id).where(labels.c.origin == "person").distinct().subquery())).scalar_one()
        info["awaiting_review"] = conn.execute(select(func.count()).select_from(
            select(labels.c.post_id).where(labels.c.origin == "model", labels.c.needs_review.is_(True))
            .distinct().subquery())).scalar_one()
        latest_model = conn.execute(select(models.c.version, models.c.trained_at)
                                    .order_by(models.c.trained_at.desc()).limit(1)).first()
        info["model"] = latest_model.version if latest_model else "starter model (bundled)"
        info["sources"] = []
        last_ids = select(func.max(runs.c.id).label("id")).group_by(runs.c.source, runs.c.hashtag, runs.c.instance)
        for r in conn.execute(select(runs).where(runs.c.id.in_(last_ids)).order_by(runs.c.source, runs.c.instance)):
            last_ok = conn.execute(select(func.max(runs.c.finished_at)).where(
                runs.c.source == r.source, runs.c.hashtag == r.hashtag, runs.c.instance == r.instance,
                runs.c.outcome == "ok")).scalar_one()
            info["sources"].append({
                "source": r.source, "hashtag": r.hashtag, "instance": r.instance, "started": r.started_at,
                "finished": r.finished_at, "outcome": r.outcome, "new": r.n_new, "known": r.n_known,
                "skipped": r.n_skipped, "error": r.error, "last_success": last_ok,
            })
        last_jobs = select(func.max(jobs.c.id)).group_by(jobs.c.job)
        info["jobs"] = [
            {"job": j.job, "started": j.started_at, "finished": j.finished_at, "outcome": j.outcome,
             "counts": j.counts, "error": j.error, "host": j.host, "pid": j.pid}
            for j in conn.execute(select(jobs).where(jobs.c.id.in_(last_jobs)).order_by(jobs.c.job))
        ]
        # The last run that went wrong, when a later one went well: what failed and why.
        for j in info["jobs"]:
            bad = conn.execute(select(jobs.c.started_at, jobs.c.outcome, jobs.c.error).where(
                jobs.c.job == j["job"], jobs.c.outcome.in_(("failed", "partial"))).order_by(jobs.c.id.desc())
                .limit(1)).first()
            j["last_problem"] = ({"started": bad.started_at, "outcome": bad.outcome, "error": bad.error}
                                 if bad is not None and j["outcome"] not in ("failed", "partial") else None)
    from innoverheid.jobs import job_names
    from innoverheid.locks import holders
    from scheduler import stored_next_runs

    info["locks"] = [{"lock": h.name, "holder": h.owner, "since": h.since, "expires": h.expires}
                     for h in holders(db, job_names(cfg))]
    info["next_runs"] = next_runs(cfg, now, stored_next_runs(db))
    info["notes"] = _source_notes(cfg, db, info, now)
    return info


def _source_notes(cfg: Config, db: Database, info: dict, now: datetime) -> list[str]:
    notes = []
    if cfg.sources.x.enabled:
        try:
            from harvester import x as xsrc

            used = posts_this_month(db, "x", now)
            notes.append(f"x: {xsrc.budget_left(cfg.sources.x, used)} of {cfg.sources.x.monthly_cap} posts left "
                         "in this month's budget (sources.x.monthly_cap)")
            last_ok = max((s["last_success"] for s in info["sources"] if s["source"] == "x" and s["last_success"]),
                          default=None)
            note = xsrc.coverage_note(last_ok, now)
            if note:
                notes.append(note)
        except ImportError:  # pragma: no cover - the X module is part of the package
            pass
    return notes


def _fmt(dt) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def _pending(n: dict[str, Any]) -> str:
    if not n.get("pending"):
        return ""
    if n.get("within_grace"):
        return f" - a run missed at {n['pending']} is caught up when the scheduler starts"
    return (f" - the run due at {n['pending']} was missed by more than schedule.misfire_grace_minutes: "
            "the scheduler records it as skipped; the next run collects everything since the bookmarks")


def render(info: dict[str, Any]) -> str:
    lines = [f"database: {info['database']}",
             f"posts: {info['posts']} (" + ", ".join(f"{k} {v}" for k, v in sorted(info["posts_by_source"].items()))
             + ")" if info["posts_by_source"] else f"posts: {info['posts']}",
             f"labelled: {info['posts_labelled']}, checked by a person: {info['posts_checked_by_person']}, "
             f"awaiting review: {info['awaiting_review']}",
             f"model: {info['model']}", "", "last run per source:"]
    if not info["sources"]:
        lines.append("  (no harvest yet: run 'innoverheid harvest')")
    for s in info["sources"]:
        where = f" {s['instance']}" if s["instance"] else ""
        lines.append(f"  {s['source']}{where} #{s['hashtag']}: {s['outcome']} at {_fmt(s['started'])}, "
                     f"new {s['new']}, known {s['known']}, skipped {s['skipped']}")
        if s["error"]:
            lines.append(f"      error: {s['error']}")
    lines += ["", "last run per job:"]
    if not info["jobs"]:
        lines.append("  (none yet: 'innoverheid run' or 'innoverheid schedule')")
    for j in info["jobs"]:
        where = f" on {j['host']}" if j.get("host") else ""
        err = f" - {j['error']}" if j["error"] else ""
        lines.append(f"  {j['job']}: {j['outcome']} at {_fmt(j['started'])}{where}{err}")
        counts = j.get("counts") or {}
        if counts.get("steps"):
            lines.append("      steps: " + ", ".join(f"{k} {v}" for k, v in counts["steps"].items()))
        if counts.get("sources"):
            lines.append("      sources: " + ", ".join(
                f"{k} {v.get('status')} (new {v.get('new', 0)}, known {v.get('known', 0)}, "
                f"errors {v.get('errors', 0)})" for k, v in counts["sources"].items()))
        if j.get("last_problem"):
            p = j["last_problem"]
            lines.append(f"      last problem: {p['outcome']} at {_fmt(p['started'])} - {p['error']}")
    if info.get("locks"):
        lines += ["", "running now (lock held):"]
        lines += [f"  {lk['lock']}: {lk['holder']} since {_fmt(lk['since'])}"
                  + (f", lease expires {_fmt(lk['expires'])} unless renewed" if lk.get("expires") else "")
                  for lk in info["locks"]]
    lines += ["", "next scheduled runs:"]
    lines += [f"  {n['job']} ({n['cron']}): {n['next']}"
              + _pending(n) for n in info["next_runs"]]
    if info["notes"]:
        lines += ["", "notes:"] + [f"  {n}" for n in info["notes"]]
    return "\n".join(lines)
