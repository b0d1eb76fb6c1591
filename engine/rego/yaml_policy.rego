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
lookup(p) := input[p[0]][p[1]] if count(p) == 2

lookup(p) := input[p[0]][p[1]][p[2]] if count(p) == 3

field_values := {f.key: v | some f in cond.fields; v := lookup(f.path)}

# signals.<name>.score|confidence: the maximum over the kept signals of that name (absent
# when there is none); signals.<name>.present: whether there is one.
signal_lists := {f.key: [s[f.attr] | some s in input.signals; s.name == f.name] | some f in cond.signal_fields}

signal_values := {k: max(xs) | some k; xs := signal_lists[k]; count(xs) > 0}

signal_names := {s.name | some s in input.signals}

presence := {f.key: v | some f in cond.presence; v := f.name in signal_names}

# --- leaves: one comparison on one present value ----------------------------------------

leaf_value(n) := field_values[n.key]

leaf_value(n) := signal_values[n.key]

leaf_value(n) := presence[n.key]

member(xs, v) if {
	some x in xs
	x == v
}

leaf_holds(n, v) if {
	n.op == "eq"
	v == n.value
}

leaf_holds(n, v) if {
	n.op == "ne"
	v != n.value
}

leaf_holds(n, v) if {
	n.op == "gt"
	v > n.value
}

leaf_holds(n, v) if {
	n.op == "gte"
	v >= n.value
}

leaf_holds(n, v) if {
	n.op == "lt"
	v < n.value
}

leaf_holds(n, v) if {
	n.op == "lte"
	v <= n.value
}

leaf_holds(n, v) if {
	n.op == "in"
	member(n.values, v)
}

leaf_holds(n, v) if {
	n.op == "not_in"
	not member(n.values, v)
}

# --- combinators, level by level -----------------------------------------------------------

missing_child(children, held) if {
	some c in children
	not c in held
}

node_holds(n, held) if {
	n.op == "all"
	not missing_child(n.children, held)
}

node_holds(n, held) if {
	n.op == "any"
	some c in n.children
	c in held
}

node_holds(n, held) if {
	n.op == "not"
	not n.children[0] in held
}

# The ids of the nodes that hold; a node's children all sit on lower levels.
held0 := {n.id | some n in cond.leaves; leaf_holds(n, leaf_value(n))}

held1 := held0 | {n.id | some n in cond.levels[0]; node_holds(n, held0)}

held2 := held1 | {n.id | some n in cond.levels[1]; node_holds(n, held1)}

held3 := held2 | {n.id | some n in cond.levels[2]; node_holds(n, held2)}

held4 := held3 | {n.id | some n in cond.levels[3]; node_holds(n, held3)}

held := held4

# --- thresholds -------------------------------------------------------------------------

# In policy order, so reasons and phrases read the same as the YAML engine's.
applied := [adj | some adj in cfg.adjustments; adj.when in held]

# A top-level comprehension per action (not a function with a comprehension inside:
# rego-cpp 1.5.2 evaluates that wrongly).
shifts := {a: sum([adj.shift[a] | some adj in applied]) | some a in threshold_actions}

limited(action) := min([0.99, cfg.thresholds[action] + shifts[action]])

# Thresholds stay ordered and inside (0, 1) whatever the shifts add up to.
floor_warn := max([0.01, limited("warn")])

floor_step_up := max([floor_warn, limited("step_up")])

floor_review := max([floor_step_up, limited("review")])

floor_block := max([floor_review, limited("block")])

round4(x) := round(x * 10000) / 10000

thresholds := {
	"warn": round4(floor_warn),
	"step_up": round4(floor_step_up),
	"review": round4(floor_review),
	"block": round4(floor_block),
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

step(i, prev) := rule_result(cfg.rules[i], prev) if cfg.rules[i].when in held

else := prev

# Rules apply in order, each to the action the previous ones left (unrolled: 32 rules).
s0 := evidence_rank

s1 := step(0, s0)

s2 := step(1, s1)

s3 := step(2, s2)

s4 := step(3, s3)

s5 := step(4, s4)

s6 := step(5, s5)

s7 := step(6, s6)

s8 := step(7, s7)

s9 := step(8, s8)

s10 := step(9, s9)

s11 := step(10, s10)

s12 := step(11, s11)

s13 := step(12, s12)

s14 := step(13, s13)

s15 := step(14, s14)

s16 := step(15, s15)

s17 := step(16, s16)

s18 := step(17, s17)

s19 := step(18, s18)

s20 := step(19, s19)

s21 := step(20, s20)

s22 := step(21, s21)

s23 := step(22, s22)

s24 := step(23, s23)

s25 := step(24, s24)

s26 := step(25, s25)

s27 := step(26, s26)

s28 := step(27, s27)

s29 := step(28, s28)

s30 := step(29, s29)

s31 := step(30, s30)

s32 := step(31, s31)

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
