package tests.key_tags

user_policies := {"111": {
	"app": [{"name": "use-keys", "document": {"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}}],
	"prod-api": [{"name": "use-keys", "document": {"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}}],
}}

prod_key := {"account": "111", "arn": "acs:kms:cn-hangzhou:111:key/key-p", "class": "customer", "creator": "111", "tags": {"env": "prod"}}

test_prod_principal_uses_a_prod_key if {
	d := data.kms.authz.decision with data.raftkms.user_policies as user_policies
		with input as {"action": "kms:Decrypt", "principal": {"account": "111", "type": "user", "name": "prod-api"}, "resource": prod_key}
	d.allow
}

test_other_user_may_not if {
	d := data.kms.authz.decision with data.raftkms.user_policies as user_policies
		with input as {"action": "kms:Decrypt", "principal": {"account": "111", "type": "user", "name": "app"}, "resource": prod_key}
	not d.allow
	"keys tagged env=prod are for prod-… principals" in d.reasons
}

test_describe_is_not_restricted if {
	d := data.kms.authz.decision with data.raftkms.user_policies as user_policies
		with input as {"action": "kms:DescribeKey", "principal": {"account": "111", "type": "user", "name": "app"}, "resource": prod_key}
	d.allow
}
