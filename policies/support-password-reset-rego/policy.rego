# Rego twin of policies/support-password-reset (policy.yaml): the same thresholds,
# adjustments, rules, degraded handling and obligations, written the way a security team
# that already uses OPA would write them. Numbers and texts live in data.json; conditions
# are code. tests.yaml is identical to the YAML twin's, and a property test checks both
# choose the same action on generated requests.
#
# input: the manifest-minimized request plus input.fused (the engine's fusion:
# risk, evidence_mass, degraded, contributions). Absent fields make a condition undefined,
# so they never trigger an adjustment or a rule (as in the YAML format).
package liveguard.support_password_reset_rego

import rego.v1

cfg := data.liveguard_data.support_password_reset_rego

severity := {"log": 0, "warn": 1, "step_up": 2, "review": 3, "block": 4}

by_severity := ["log", "warn", "step_up", "review", "block"]

threshold_actions := ["warn", "step_up", "review", "block"]

assurance_rank := {"none": 0, "low": 1, "substantial": 2, "high": 3}

# --- context that shifts thresholds (negative = stricter) ---------------------------------

adjusts contains "weak_identity" if assurance_rank[input.identity.assurance] <= assurance_rank.low

adjusts contains "untrusted_device" if input.device.new_device == true

adjusts contains "untrusted_device" if input.device.posture in {"unknown", "compromised"}

adjusts contains "repeated_failures" if input.identity.failed_attempts >= 2

adjusts contains "strong_recent_auth" if {
	assurance_rank[input.identity.assurance] >= assurance_rank.substantial
	input.identity.seconds_since_auth <= 300
	input.device.posture in {"managed", "known"}
}

# In data.json order, so reasons and phrases read the same as the YAML twin's.
applied := [adj | some adj in cfg.adjustments; adj.id in adjusts]

# One object comprehension over the actions, not a function `shift(a)` with a comprehension
# inside: rego-cpp 1.5.2 evaluates a comprehension that uses an outer variable as a key
# wrongly (see engine/rego_lint.py); the oracle tests against OPA would catch it.
shifts := {a: sum([adj.shift[a] | some adj in applied]) | some a in threshold_actions}

# Thresholds stay ordered and inside (0, 1) whatever the shifts add up to.
limited(action) := min([0.99, cfg.thresholds[action] + shifts[action]])

floor_warn := max([0.01, limited("warn")])

floor_step_up := max([floor_warn, limited("step_up")])

floor_review := max([floor_step_up, limited("review")])

floor_block := max([floor_review, limited("block")])

round4(x) := round(x * 10000) / 10000

effective_thresholds := {
	"warn": round4(floor_warn),
	"step_up": round4(floor_step_up),
	"review": round4(floor_review),
	"block": round4(floor_block),
}

# --- the action -----------------------------------------------------------------------

# Thresholds are non-decreasing, so the ones the risk reaches form a prefix.
risk_action := by_severity[count([a | some a in threshold_actions; input.fused.risk >= effective_thresholds[a]])]

# Weak evidence: never act harder than max_action, and fall back to min_action.
evidence_action := by_severity[min([
	severity[cfg.degraded.max_action],
	max([severity[risk_action], severity[cfg.degraded.min_action]]),
])] if input.fused.degraded

else := risk_action

# --- hard overrides (all "at least", and allowed on degraded evidence) ----------------------

fires contains "compromised_device" if input.device.posture == "compromised"

fires contains "lockout_pattern" if input.identity.failed_attempts >= 5

fires contains "geo_and_new_device" if {
	input.device.geo_mismatch == true
	input.device.new_device == true
}

fired_rules := [r | some r in cfg.rules; r.id in fires]

action := by_severity[max(array.concat([severity[evidence_action]], [severity[r.action] | some r in fired_rules]))]

# --- explanation and obligations --------------------------------------------------------

adjustment_reasons := [{
	"code": concat(".", ["adjustment", adj.id]),
	"message": sprintf("Thresholds adjusted for %s.", [adj.phrase]),
	"kind": "adjustment",
} |
	some adj in applied
]

rule_reasons := [{"code": concat(".", ["rule", r.id]), "message": r.reason, "kind": "rule"} | some r in fired_rules]

degraded_reasons := [{
	"code": "evidence.degraded",
	"message": cfg.degraded.reason,
	"kind": "degraded",
	"value": round(input.fused.evidence_mass * 1000) / 1000,
}] if input.fused.degraded

else := []

action_obligations := [ob | ob := cfg.obligations[action]]

second_pass_why := "medium risk" if {
	input.fused.risk >= cfg.second_pass.band[0]
	input.fused.risk < cfg.second_pass.band[1]
} else := "evidence too weak" if {
	input.fused.degraded
	cfg.second_pass.on_degraded
}

second_pass_obligations := [{
	"kind": "second_pass",
	"detectors": cfg.second_pass.detectors,
	# A request: the engine grants raw media only if the data-flow manifest and consent allow.
	"raw_media_allowed": cfg.second_pass.raw_media,
	"why": second_pass_why,
}] if {
	severity[action] < severity.block
	second_pass_why
} else := []

# Every id `fired` can report: policy test prints which of them the cases never reached.
rule_ids := array.concat(
	[concat(".", ["adjustment", adj.id]) | some adj in cfg.adjustments],
	[concat(".", ["rule", r.id]) | some r in cfg.rules],
)

decision := {
	"action": action,
	"reasons": array.concat(array.concat(adjustment_reasons, rule_reasons), degraded_reasons),
	"thresholds": effective_thresholds,
	"obligations": array.concat(action_obligations, second_pass_obligations),
	"context": [adj.phrase | some adj in applied],
	"fired": array.concat(
		[concat(".", ["adjustment", adj.id]) | some adj in applied],
		[concat(".", ["rule", r.id]) | some r in fired_rules],
	),
}
