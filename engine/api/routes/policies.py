"""The live policies: manifest, version, digest, and the privacy summary the board reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool

from engine.api.auth import require, runtime
from engine.api.routes.common import NotFound, errors
from engine.api.schemas import PolicyDetail, PolicyList, PolicySummary
from engine.core.errors import LiveguardError
from engine.core.manifest import POLICY_ID, PolicyManifest
from engine.policy.repository import PolicyRepository
from engine.store.keys import Principal
from governance.folder import MANIFEST, validate_file
from governance.loading import load_governance
from governance.report import summarize

router = APIRouter(prefix="/v1/policies", tags=["policies"])


def _summary(repo: PolicyRepository, pid: str) -> tuple[PolicySummary, PolicyManifest, list[str]]:
    problems: list[str] = []
    manifest = validate_file(PolicyManifest, repo.root / pid / MANIFEST, problems)
    if manifest is None:
        raise NotFound(f"policy {pid!r} has no valid manifest", problems=problems)
    digest = None
    try:
        digest = repo.get(pid).digest
    except LiveguardError as exc:
        problems += exc.problems or [exc.message]
    summary = PolicySummary(
        id=manifest.id,
        version=manifest.version,
        engine=manifest.engine,
        digest=digest,
        package=f"liveguard.{manifest.package}",
        fail_mode=manifest.fail_mode.value,
        owner=manifest.owner,
        applies_to={
            "channels": list(manifest.applies_to.channels),
            "kinds": list(manifest.applies_to.kinds),
        },
        loads=digest is not None,
    )
    return summary, manifest, problems


def _list(repo: PolicyRepository) -> PolicyList:
    out = []
    for pid in repo.ids():
        try:
            out.append(_summary(repo, pid)[0])
        except NotFound:
            continue  # a folder with a broken manifest is not a policy yet
    return PolicyList(policies=out)


def _detail(repo: PolicyRepository, pid: str) -> PolicyDetail:
    if not POLICY_ID.match(pid) or not (repo.root / pid / MANIFEST).is_file():
        raise NotFound(f"unknown policy {pid!r}")
    summary, manifest, problems = _summary(repo, pid)
    pia, dataflow, gov_problems = load_governance(repo.root / pid)
    return PolicyDetail(
        **summary.model_dump(),
        manifest=manifest.model_dump(mode="json"),
        privacy=summarize(pia, dataflow),
        problems=problems + [str(p) for p in gov_problems],
    )


@router.get("", response_model=PolicyList, summary="List policies", responses=errors(401, 503))
async def list_policies(request: Request, _: Principal = Depends(require())) -> PolicyList:
    return await run_in_threadpool(_list, runtime(request).repo)


@router.get(
    "/{policy_id}",
    response_model=PolicyDetail,
    summary="One policy: manifest, version, digest, PIA and data-flow summary",
    responses=errors(401, 404, 422, 503),
)
async def get_policy(
    request: Request,
    policy_id: Annotated[str, Path(max_length=200, examples=["support-password-reset"])],
    _: Principal = Depends(require()),
) -> PolicyDetail:
    return await run_in_threadpool(_detail, runtime(request).repo, policy_id)
