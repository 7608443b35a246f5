# Keys tagged env=prod are used only by principals named prod-…; everyone
# else keeps what the built-in rules and their documents give them.
package kms.custom.tags

crypto_actions := {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}

deny contains "keys tagged env=prod are for prod-… principals" if {
	input.resource.tags.env == "prod"
	crypto_actions[input.action]
	input.principal.type == "user"
	not startswith(input.principal.name, "prod-")
}
