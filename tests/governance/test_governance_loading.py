from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from governance.loading import load_governance


def test_clean_folder_loads_both_documents(policy_dir: Callable[..., Path]) -> None:
    pia, df, problems = load_governance(policy_dir())
    assert pia is not None and df is not None and problems == []


def test_missing_files_become_problems(policy_dir: Callable[..., Path]) -> None:
    folder = policy_dir(pia=None, dataflow=None)
    pia, df, problems = load_governance(folder)
    assert pia is None and df is None
    assert [(p.code, Path(p.file).name) for p in problems] == [
        ("manifest_missing", "pia.yaml"),
        ("manifest_missing", "dataflow.yaml"),
    ]


def test_schema_errors_become_one_problem_each(
    policy_dir: Callable[..., Path], dataflow_data: Callable[..., dict[str, Any]]
) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["pattern"] = "edge"
        d["elements"][1]["processed_at"] = "moon"

    folder = policy_dir(dataflow=dataflow_data(bad))
    _, df, problems = load_governance(folder)
    assert df is None
    assert [str(p) for p in problems] == [
        f"{folder / 'dataflow.yaml'}: pattern: expected one of: edge_only, cloud_only, hybrid, "
        "feature_only_cloud (got 'edge')",
        f"{folder / 'dataflow.yaml'}: elements[1].processed_at: expected one of: edge, cloud "
        "(got 'moon')",
    ]
    assert {p.code for p in problems} == {"manifest_invalid"}


def test_broken_yaml_names_the_line(policy_dir: Callable[..., Path]) -> None:
    folder = policy_dir(pia="policy: x\nrisks: [unclosed\n")
    _, _, problems = load_governance(folder)
    assert problems[0].code == "manifest_invalid"
    assert "invalid YAML" in problems[0].message and "line" in problems[0].message


def test_non_mapping_document_is_a_problem(policy_dir: Callable[..., Path]) -> None:
    _, _, problems = load_governance(policy_dir(pia="- a\n- b\n", dataflow=""))
    assert [p.message for p in problems] == [
        "expected a YAML mapping, got list",
        "expected a YAML mapping, got an empty file",
    ]


def test_problems_carry_the_policy_id_from_the_folder(policy_dir: Callable[..., Path]) -> None:
    _, _, problems = load_governance(policy_dir(pia=None))
    assert problems[0].policy_id == "support-password-reset"
