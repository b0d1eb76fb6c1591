# Rego twin of policies/payout-authorization (policy.yaml): value-scaled thresholds,
# identity and device context, hard overrides and obligations, written as an OPA team
# would. tests.yaml is identical to the YAML twin's, and a property test checks both choose
# the same action.
#
# Conditions are code; numbers and texts live in data.json. data.json's `derived` section
# holds the constant part of the policy evaluated once (partial evaluation): for every
# combination of adjustments its effective thresholds, reasons and phrases; for every
# combination of hard rules its strongest action and reasons; the obligations per action.
# It is generated from the authored sections (thresholds, adjustments, rules, degraded,
# second_pass, obligations) by tests/engine/rego/twin_tables.py, and a test keeps it in sync.
# Per request the policy only evaluates the conditions and looks the results up: no
# comprehension, set building or string formatting at query time (the costly constructs in
# rego-cpp; see benchmarks/rego_constructs.py).
#
# input: the manifest-minimized request plus input.fused (the engine's fusion). Absent
# fields make a condition undefined, so they never trigger an adjustment or a rule.
package liveguard.payout_authorization_rego

import rego.v1

# An import, not `cfg := data…`: a rule bound to a data subtree makes OPA copy the whole
# subtree on every query; an import is only a name for the path.
import data.liveguard_data.payout_authorization_rego as cfg

# Enumerations as lookup objects: `weak_assurance[x]` is undefined (not false) for any
# other value, so an absent or unknown field never applies an adjustment or a rule.
weak_assurance := {"none": true, "low": true}

untrusted_posture := {"unknown": true, "compromised": true}

weak_identity := 1 if weak_assurance[input.identity.assurance]
else := 0

# --- context that shifts thresholds: 1 if the adjustment applies, else 0 -------------------
# (in data.json's `adjustments` order, which indexes derived.adjusted)

value_over_10k := 1 if input.transaction.value >= 10000
else := 0

value_over_250k := 1 if input.transaction.value >= 250000
else := 0

untrusted_device := 1 if untrusted_posture[input.device.posture]
else := 1 if input.device.new_device == true
else := 1 if input.device.geo_mismatch == true
else := 0

# {thresholds, reasons, context, fired} for this combination of adjustments.
adjusted := cfg.derived.adjusted[value_over_10k][value_over_250k][weak_identity][untrusted_device]

thresholds := adjusted.thresholds

# --- the action -----------------------------------------------------------------------

risk := input.fused.risk

degraded := input.fused.degraded

# Thresholds are non-decreasing, so the highest one the risk reaches decides.
risk_action := "block" if risk >= thresholds.block
else := "review" if risk >= thresholds.review
else := "step_up" if risk >= thresholds.step_up
else := "warn" if risk >= thresholds.warn
else := "log"

# Weak evidence: never authorize money on it (min_action) and never block on it alone.
evidence_action := cfg.derived.degraded_action[risk_action] if degraded
else := risk_action

# --- hard overrides (all "at least", and allowed on degraded evidence): 1 if it fires -----
# (in data.json's `rules` order, which indexes derived.overrides)

compromised_device_high_value := 1 if {
	input.device.posture == "compromised"
	input.transaction.value >= 10000
} else := 0

high_value_needs_strong_identity := 1 if {
	input.transaction.value >= 250000
	weak_identity == 1
} else := 0

repeated_failures := 1 if input.identity.failed_attempts >= 3
else := 0

# {action, reasons, fired} for this combination of rules ("log" when none fires).
overrides := cfg.derived.overrides[compromised_device_high_value][high_value_needs_strong_identity][repeated_failures]

action := cfg.derived.at_least[evidence_action][overrides.action]

# --- explanation and obligations --------------------------------------------------------

degraded_reasons := [{
	"code": "evidence.degraded",
	"message": cfg.degraded.reason,
	"kind": "degraded",
	"value": round(input.fused.evidence_mass * 1000) / 1000,
}] if degraded
else := []

second_pass := cfg.second_pass

second_pass_why := "medium risk" if {
	risk >= second_pass.band[0]
	risk < second_pass.band[1]
} else := "evidence too weak" if {
	degraded
	second_pass.on_degraded
} else := "none"

rule_ids := array.concat(
	[concat(".", ["adjustment", adj.id]) | some adj in cfg.adjustments],
	[concat(".", ["rule", r.id]) | some r in cfg.rules],
)

decision := {
	"action": action,
	"reasons": array.concat(array.concat(adjusted.reasons, overrides.reasons), degraded_reasons),
	"thresholds": thresholds,
	# The action's obligation plus, below block, the second-pass request.
	"obligations": cfg.derived.obligations[action][second_pass_why],
	"context": adjusted.context,
	"fired": array.concat(adjusted.fired, overrides.fired),
}
