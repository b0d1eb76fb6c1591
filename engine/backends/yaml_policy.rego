# Generic evaluator for a YAML policy exported as data (engine/yaml_export.py).
#
# One copy of this module is shipped per exported policy: the exporter rewrites the
# `package` line and the `cfg :=` line (both marked `# exporter:`) to the policy's package
# `liveguard.<id with - as _>` and its data `data.liveguard_data.<package>`. The semantics
# are those of engine/policy_yaml.py (CompiledYamlPolicy.evaluate) and engine/decide.py
# (the obligation plan); the output is the `decision` document every Rego policy returns.
#
# input: the manifest-minimized request plus input.fused (the engine's fusion), exactly as
# the embedded backend and the remote OPA backend send it. An absent field satisfies no
# comparison, as in the YAML format.
#
# Rego has no recursion, so the exporter flattens every condition into a node table:
# leaves (one field, one comparison; ordinal ranges already turned into label sets) and
# combinators (all/any/not) grouped by depth. The truth of every node is computed level by
# level (up to depth 4), and the rules are folded in order by unrolling (up to 32 rules);
# the exporter refuses anything larger with a clear error.
#
# Written for both OPA and rego-cpp 1.5.2 (see engine/rego_lint.py): no `some k, v in` in
# comprehensions, no comprehension inside a function that reads its arguments, arrays
# (ordered) rather than objects where order matters.
package liveguard.yaml_policy # exporter: package

import rego.v1

cfg := data.liveguard_data.yaml_policy # exporter: data

cond := cfg.conditions

by_severity := ["log", "warn", "step_up", "review", "block"]

threshold_actions := ["warn", "step_up", "review", "block"]

# --- the values conditions compare ---------------------------------------------------------

# Request and fusion fields, by dotted key; a path of 2 or 3 steps into input.
field_values := object.union(
	{f.key: v | some f in cond.fields; count(f.path) == 2; v := input[f.path[0]][f.path[1]]},
	{f.key: v | some f in cond.fields; count(f.path) == 3; v := input[f.path[0]][f.path[1]][f.path[2]]},
)

# signals.<name>.score|confidence: the maximum over the kept signals of that name (absent
# when there is none); signals.<name>.present: whether there is one.
signal_lists := {f.key: [s[f.attr] | some s in input.signals; s.name == f.name] | some f in cond.signal_fields}

signal_values := {k: max(xs) | some k; xs := signal_lists[k]; count(xs) > 0}

signal_names := {s.name | some s in input.signals}

presence := {f.key: v | some f in cond.presence; v := f.name in signal_names}

values := object.union(object.union(field_values, signal_values), presence)

# --- leaves: one comparison on one present value ----------------------------------------

# Leaves come grouped by comparison, so each is one comprehension over plain data (no
# function call per leaf: in rego-cpp that is what an evaluation costs most).
member(xs, v) if {
	some x in xs
	x == v
}

held_eq := {n.id | some n in cond.leaves.eq; values[n.key] == n.value}

held_ne := {n.id | some n in cond.leaves.ne; values[n.key] != n.value}

held_gt := {n.id | some n in cond.leaves.gt; values[n.key] > n.value}

held_gte := {n.id | some n in cond.leaves.gte; values[n.key] >= n.value}

held_lt := {n.id | some n in cond.leaves.lt; values[n.key] < n.value}

held_lte := {n.id | some n in cond.leaves.lte; values[n.key] <= n.value}

held_in := {n.id | some n in cond.leaves["in"]; some x in n.values; x == values[n.key]}

held_not_in := {n.id | some n in cond.leaves.not_in; v := values[n.key]; not member(n.values, v)}

# --- combinators, level by level -----------------------------------------------------------

missing_child(children, held) if {
	some c in children
	not c in held
}

# The ids of the nodes that hold; a node's children all sit on lower levels.
held0 := ((((((held_eq | held_ne) | held_gt) | held_gte) | held_lt) | held_lte) | held_in) | held_not_in

held1 := ((held0 | {n.id | some n in cond.levels[0].all; not missing_child(n.children, held0)}) | {n.id | some n in cond.levels[0].any; some c in n.children; c in held0}) | {n.id | some n in cond.levels[0].not; not n.children[0] in held0}

held2 := ((held1 | {n.id | some n in cond.levels[1].all; not missing_child(n.children, held1)}) | {n.id | some n in cond.levels[1].any; some c in n.children; c in held1}) | {n.id | some n in cond.levels[1].not; not n.children[0] in held1}

held3 := ((held2 | {n.id | some n in cond.levels[2].all; not missing_child(n.children, held2)}) | {n.id | some n in cond.levels[2].any; some c in n.children; c in held2}) | {n.id | some n in cond.levels[2].not; not n.children[0] in held2}

held4 := ((held3 | {n.id | some n in cond.levels[3].all; not missing_child(n.children, held3)}) | {n.id | some n in cond.levels[3].any; some c in n.children; c in held3}) | {n.id | some n in cond.levels[3].not; not n.children[0] in held3}

held := held4

# --- thresholds -------------------------------------------------------------------------

# In policy order, so reasons and phrases read the same as the YAML engine's.
applied := [adj | some adj in cfg.adjustments; adj.when in held]

# A top-level comprehension per action (not a function with a comprehension inside:
# rego-cpp 1.5.2 evaluates that wrongly).
shifts := {a: sum([adj.shift[a] | some adj in applied]) | some a in threshold_actions}

# Thresholds stay ordered and inside (0, 1) whatever the shifts add up to (written out per
# action: a function call per threshold costs more than the arithmetic in rego-cpp).
floor_warn := max([0.01, min([0.99, cfg.thresholds.warn + shifts.warn])])

floor_step_up := max([floor_warn, min([0.99, cfg.thresholds.step_up + shifts.step_up])])

floor_review := max([floor_step_up, min([0.99, cfg.thresholds.review + shifts.review])])

floor_block := max([floor_review, min([0.99, cfg.thresholds.block + shifts.block])])

thresholds := {
	"warn": round(floor_warn * 10000) / 10000,
	"step_up": round(floor_step_up * 10000) / 10000,
	"review": round(floor_review * 10000) / 10000,
	"block": round(floor_block * 10000) / 10000,
}

# --- the action, as a severity rank (log 0 … block 4) ---------------------------------------

# Thresholds are non-decreasing, so the ones the risk reaches form a prefix.
risk_rank := count([a | some a in threshold_actions; input.fused.risk >= thresholds[a]])

degraded if input.fused.degraded == true

# Weak evidence: never act harder than max_action, and fall back to min_action.
evidence_rank := min([cfg.degraded.max_rank, max([risk_rank, cfg.degraded.min_rank])]) if degraded

else := risk_rank

forced(r, prev) := max([prev, r.rank]) if r.mode == "at_least"

else := min([prev, r.rank]) if r.mode == "at_most"

else := r.rank

# On weak evidence a rule may not push past the degraded cap unless it says so.
rule_result(r, prev) := ceiling if {
	degraded
	not r.applies_when_degraded
	ceiling := max([prev, cfg.degraded.max_rank])
	forced(r, prev) > ceiling
} else := forced(r, prev)

# Rules apply in order, each to the action the previous ones left (unrolled: 32 rules).
# A rule that does not hold, or does not exist, passes the action on; only a rule that
# holds calls a function.
s0 := evidence_rank

s1 := rule_result(cfg.rules[0], s0) if cfg.rules[0].when in held

else := s0

s2 := rule_result(cfg.rules[1], s1) if cfg.rules[1].when in held

else := s1

s3 := rule_result(cfg.rules[2], s2) if cfg.rules[2].when in held

else := s2

s4 := rule_result(cfg.rules[3], s3) if cfg.rules[3].when in held

else := s3

s5 := rule_result(cfg.rules[4], s4) if cfg.rules[4].when in held

else := s4

s6 := rule_result(cfg.rules[5], s5) if cfg.rules[5].when in held

else := s5

s7 := rule_result(cfg.rules[6], s6) if cfg.rules[6].when in held

else := s6

s8 := rule_result(cfg.rules[7], s7) if cfg.rules[7].when in held

else := s7

s9 := rule_result(cfg.rules[8], s8) if cfg.rules[8].when in held

else := s8

s10 := rule_result(cfg.rules[9], s9) if cfg.rules[9].when in held

else := s9

s11 := rule_result(cfg.rules[10], s10) if cfg.rules[10].when in held

else := s10

s12 := rule_result(cfg.rules[11], s11) if cfg.rules[11].when in held

else := s11

s13 := rule_result(cfg.rules[12], s12) if cfg.rules[12].when in held

else := s12

s14 := rule_result(cfg.rules[13], s13) if cfg.rules[13].when in held

else := s13

s15 := rule_result(cfg.rules[14], s14) if cfg.rules[14].when in held

else := s14

s16 := rule_result(cfg.rules[15], s15) if cfg.rules[15].when in held

else := s15

s17 := rule_result(cfg.rules[16], s16) if cfg.rules[16].when in held

else := s16

s18 := rule_result(cfg.rules[17], s17) if cfg.rules[17].when in held

else := s17

s19 := rule_result(cfg.rules[18], s18) if cfg.rules[18].when in held

else := s18

s20 := rule_result(cfg.rules[19], s19) if cfg.rules[19].when in held

else := s19

s21 := rule_result(cfg.rules[20], s20) if cfg.rules[20].when in held

else := s20

s22 := rule_result(cfg.rules[21], s21) if cfg.rules[21].when in held

else := s21

s23 := rule_result(cfg.rules[22], s22) if cfg.rules[22].when in held

else := s22

s24 := rule_result(cfg.rules[23], s23) if cfg.rules[23].when in held

else := s23

s25 := rule_result(cfg.rules[24], s24) if cfg.rules[24].when in held

else := s24

s26 := rule_result(cfg.rules[25], s25) if cfg.rules[25].when in held

else := s25

s27 := rule_result(cfg.rules[26], s26) if cfg.rules[26].when in held

else := s26

s28 := rule_result(cfg.rules[27], s27) if cfg.rules[27].when in held

else := s27

s29 := rule_result(cfg.rules[28], s28) if cfg.rules[28].when in held

else := s28

s30 := rule_result(cfg.rules[29], s29) if cfg.rules[29].when in held

else := s29

s31 := rule_result(cfg.rules[30], s30) if cfg.rules[30].when in held

else := s30

s32 := rule_result(cfg.rules[31], s31) if cfg.rules[31].when in held

else := s31

steps := [
	s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16,
	s17, s18, s19, s20, s21, s22, s23, s24, s25, s26, s27, s28, s29, s30, s31, s32,
]

action := by_severity[s32]

# --- explanation and obligations --------------------------------------------------------

# An at_most rule explains a decision only when it actually lowered it.
explains(r, before, after) if r.mode != "at_most"

explains(r, before, after) if before != after

rule_reasons := [r.reason | some i; r := cfg.rules[i]; r.when in held; explains(r, steps[i], steps[i + 1])]

degraded_reasons := [{
	"code": "evidence.degraded",
	"message": cfg.degraded.reason,
	"kind": "degraded",
	"value": round(input.fused.evidence_mass * 1000) / 1000,
}] if degraded

else := []

action_obligations := obs if {
	obs := cfg.obligations[action]
}

else := []

second_pass_why := "medium risk" if {
	input.fused.risk >= cfg.second_pass.band[0]
	input.fused.risk < cfg.second_pass.band[1]
} else := "evidence too weak" if {
	degraded
	cfg.second_pass.on_degraded
}

second_pass_obligations := [{
	"kind": "second_pass",
	"detectors": cfg.second_pass.detectors,
	# A request: the engine grants raw media only if the data-flow manifest and consent allow.
	"raw_media_allowed": cfg.second_pass.raw_media,
	"why": second_pass_why,
}] if {
	s32 < 4
	second_pass_why
} else := []

# Every id `fired` can report: policy test prints which of them the cases never reached.
rule_ids := array.concat([adj.reason.code | some adj in cfg.adjustments], [r.reason.code | some r in cfg.rules])

decision := {
	"action": action,
	"reasons": array.concat(array.concat([adj.reason | some adj in applied], rule_reasons), degraded_reasons),
	"thresholds": thresholds,
	"obligations": array.concat(action_obligations, second_pass_obligations),
	"context": [adj.phrase | some adj in applied],
	"fired": array.concat(
		[adj.reason.code | some adj in applied],
		[r.reason.code | some r in cfg.rules; r.when in held],
	),
}
