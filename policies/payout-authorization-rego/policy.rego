# Rego twin of policies/payout-authorization (policy.yaml): value-scaled thresholds,
# identity and device context, hard overrides and obligations, written as an OPA team
# would. Numbers and texts live in data.json; conditions are code. tests.yaml is identical
# to the YAML twin's, and a property test checks both choose the same action.
#
# input: the manifest-minimized request plus input.fused (the engine's fusion). Absent
# fields make a condition undefined, so they never trigger an adjustment or a rule.
package liveguard.payout_authorization_rego

import rego.v1

cfg := data.liveguard_data.payout_authorization_rego

severity := {"log": 0, "warn": 1, "step_up": 2, "review": 3, "block": 4}

by_severity := ["log", "warn", "step_up", "review", "block"]

threshold_actions := ["warn", "step_up", "review", "block"]

assurance_rank := {"none": 0, "low": 1, "substantial": 2, "high": 3}

weak_identity if assurance_rank[input.identity.assurance] <= assurance_rank.low

# --- context that shifts thresholds (negative = stricter) ---------------------------------

adjusts contains "value_over_10k" if input.transaction.value >= 10000

adjusts contains "value_over_250k" if input.transaction.value >= 250000

adjusts contains "weak_identity" if weak_identity

adjusts contains "untrusted_device" if input.device.posture in {"unknown", "compromised"}

adjusts contains "untrusted_device" if input.device.new_device == true

adjusts contains "untrusted_device" if input.device.geo_mismatch == true

applied := [adj | some adj in cfg.adjustments; adj.id in adjusts]

# An object comprehension over the actions rather than a function with a comprehension
# inside (a rego-cpp 1.5.2 gap, see engine/rego_lint.py).
shifts := {a: sum([adj.shift[a] | some adj in applied]) | some a in threshold_actions}

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

risk_action := by_severity[count([a | some a in threshold_actions; input.fused.risk >= effective_thresholds[a]])]

# Weak evidence: never authorize money on it (min_action) and never block on it alone.
evidence_action := by_severity[min([
	severity[cfg.degraded.max_action],
	max([severity[risk_action], severity[cfg.degraded.min_action]]),
])] if input.fused.degraded

else := risk_action

# --- hard overrides (all "at least", and allowed on degraded evidence) ----------------------

fires contains "compromised_device_high_value" if {
	input.device.posture == "compromised"
	input.transaction.value >= 10000
}

fires contains "high_value_needs_strong_identity" if {
	input.transaction.value >= 250000
	weak_identity
}

fires contains "repeated_failures" if input.identity.failed_attempts >= 3

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
