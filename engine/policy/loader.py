"""Loading one policy folder into a ``Policy``, every problem reported at once.

The backends are chosen by the manifest's ``engine``; a Rego policy is evaluated by the
embedded engine its manifest's ``rego_engine`` names, else ``LIVEGUARD_REGO_ENGINE`` (or the
caller's ``rego_engine``), and by a remote OPA instead when ``LIVEGUARD_OPA_URL`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from engine.backends.yaml_policy import YamlEvaluator, load_yaml_backend
from engine.core.errors import PolicyInvalid, PolicyNotFound
from engine.core.fusion import FusionConfig
from engine.core.manifest import PolicyManifest
from engine.core.policy import Evaluator, Policy
from engine.settings import get_settings
from governance.dataflow import DataFlowManifest
from governance.folder import MANIFEST, folder_digest, folder_problems, validate_file

#: The backends by manifest ``engine``; each builds (fusion, evaluator) or appends problems.
BackendLoader = Callable[[Path, PolicyManifest, list[str]], tuple[FusionConfig, Evaluator] | None]


def _rego_backend(
    folder: Path,
    manifest: PolicyManifest,
    problems: list[str],
    *,
    rego_engine: Literal["regorus", "regopy"] | None = None,
) -> tuple[FusionConfig, Evaluator] | None:
    # Imported on the first Rego policy: regopy loads a native library, and a repository of
    # YAML policies never needs it.
    from engine.backends.rego.loader import load_rego_backend

    settings = get_settings()
    loaded = load_rego_backend(
        folder, manifest, problems, default_engine=rego_engine or settings.rego_engine
    )
    if loaded is None:
        return None
    fusion, evaluator = loaded
    if settings.opa_url:
        from engine.backends.opa.remote import RemoteOpaEvaluator

        evaluator = RemoteOpaEvaluator(
            evaluator, settings, fail_mode=manifest.fail_mode, policy_id=manifest.id
        )
    return fusion, evaluator


BACKENDS: dict[str, BackendLoader] = {"yaml": load_yaml_backend, "rego": _rego_backend}


def load_policy_folder(
    folder: Path,
    *,
    git_ref: str | None = None,
    rego_engine: Literal["regorus", "regopy"] | None = None,
) -> Policy:
    """Load one policy folder, reporting every problem at once.

    ``rego_engine``: the embedded Rego engine when the manifest names none (default: the
    setting); tests and benchmarks use it to run one policy on each engine."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise PolicyNotFound(f"{folder}: no policy here (missing {MANIFEST})")
    problems = folder_problems(folder)
    if problems:
        # Nothing is parsed from a folder with links out of it or files past the cap.
        raise PolicyInvalid(f"policy {folder.name!r} does not load", problems=problems)
    manifest = validate_file(PolicyManifest, folder / MANIFEST, problems)
    dataflow = validate_file(DataFlowManifest, folder / "dataflow.yaml", problems)
    loaded = None
    if manifest is not None:
        if manifest.id != folder.name and git_ref is None:
            problems.append(
                f"{folder / MANIFEST}: id: expected the folder name {folder.name!r}, got {manifest.id!r}"
            )
        backend = BACKENDS.get(manifest.engine)
        if backend is None:
            problems.append(
                f"{folder / MANIFEST}: engine: the {manifest.engine!r} backend is not available"
            )
        elif manifest.engine == "rego":
            loaded = _rego_backend(folder, manifest, problems, rego_engine=rego_engine)
        else:
            loaded = backend(folder, manifest, problems)
        if dataflow is not None and dataflow.policy != manifest.id:
            problems.append(
                f"{folder / 'dataflow.yaml'}: policy: expected {manifest.id!r}, got {dataflow.policy!r}"
            )
    elif (folder / "policy.yaml").is_file():
        # The manifest is broken, but the logic can still be checked: report it all at once.
        load_yaml_backend(folder, None, problems)
    if problems or manifest is None or dataflow is None or loaded is None:
        raise PolicyInvalid(f"policy {folder.name!r} does not load", problems=problems)
    fusion, evaluator = loaded
    spec = evaluator.spec if isinstance(evaluator, YamlEvaluator) else None
    return Policy(
        manifest=manifest,
        digest=folder_digest(folder),
        path=folder,
        fusion=fusion,
        dataflow=dataflow,
        evaluator=evaluator,
        spec=spec,
        git_ref=git_ref,
    )
