# Keys tagged context=required refuse cryptography without an
# EncryptionContext naming the tenant ("tenant": "…").
package kms.custom.context

deny contains "this key needs an EncryptionContext with a tenant" if {
	input.resource.tags.context == "required"
	startswith(input.action, "kms:")
	input.action != "kms:DescribeKey"
	not input.context.encryption_context.tenant
}
