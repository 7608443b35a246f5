package tests.source_ip

svc_key := {"account": "111", "arn": "acs:kms:cn-hangzhou:111:key/key-s", "class": "service", "creator": "ecs"}

ecs := {"account": "111", "type": "service", "name": "ecs", "product_code": "ecs"}

test_inside_the_network if {
	d := data.kms.authz.decision with input as {"action": "kms:Decrypt", "principal": ecs, "resource": svc_key,
		"context": {"source_ip": "10.1.2.3", "secure_transport": false}}
	d.allow
}

test_outside_over_tls if {
	d := data.kms.authz.decision with input as {"action": "kms:Decrypt", "principal": ecs, "resource": svc_key,
		"context": {"source_ip": "203.0.113.7", "secure_transport": true}}
	d.allow
}

test_outside_in_clear if {
	d := data.kms.authz.decision with input as {"action": "kms:Decrypt", "principal": ecs, "resource": svc_key,
		"context": {"source_ip": "203.0.113.7", "secure_transport": false}}
	not d.allow
}
