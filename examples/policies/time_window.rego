# Key deletions are scheduled only on weekdays between 09:00 and 17:00 UTC,
# when someone is there to notice a mistake.
package kms.custom.timewindow

deny contains "key deletions are scheduled on weekdays, 09:00-17:00 UTC" if {
	input.action == "kms:ScheduleKeyDeletion"
	not office_hours
}

office_hours if {
	t := time.parse_rfc3339_ns(input.context.time)
	not time.weekday(t) in {"Saturday", "Sunday"}
	[hour, _, _] := time.clock(t)
	hour >= 9
	hour < 17
}
