package tests.time_window

key := {"account": "111", "arn": "acs:kms:cn-hangzhou:111:key/key-1", "class": "customer", "creator": "111"}

test_monday_morning if {
	d := data.kms.authz.decision with input as {"action": "kms:ScheduleKeyDeletion", "principal": {"account": "111", "type": "root"},
		"resource": key, "context": {"time": "2026-11-30T10:00:00Z"}}
	d.allow
}

test_sunday if {
	d := data.kms.authz.decision with input as {"action": "kms:ScheduleKeyDeletion", "principal": {"account": "111", "type": "root"},
		"resource": key, "context": {"time": "2026-11-29T10:00:00Z"}}
	not d.allow
}

test_late_evening if {
	d := data.kms.authz.decision with input as {"action": "kms:ScheduleKeyDeletion", "principal": {"account": "111", "type": "root"},
		"resource": key, "context": {"time": "2026-12-01T21:00:00Z"}}
	not d.allow
}
