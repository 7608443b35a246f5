# Users and products reach keys only from the internal network, or over TLS.
package kms.custom.network

deny contains "outside the internal network, call over TLS" if {
	input.principal.type != "root"
	not net.cidr_contains("10.0.0.0/8", input.context.source_ip)
	not input.context.secure_transport
}
