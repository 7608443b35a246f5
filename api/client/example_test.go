package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/raftkms/raftkms/api/client"
)

// Envelope encryption against a node started with `make run`.
func Example() {
	creds, err := client.LoadCredentials("data/root-credentials.json")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoint: "http://127.0.0.1:8080", Credentials: creds})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	key, err := c.CreateKey(ctx, "orders db")
	if err != nil {
		log.Fatal(err)
	}
	ec := map[string]string{"table": "orders"}
	dk, err := c.GenerateDataKey(ctx, key.KeyID, 32, ec)
	if err != nil {
		log.Fatal(err)
	}
	// Encrypt your data with dk.Plaintext, store dk.CiphertextBlob beside it,
	// and drop dk.Plaintext. Later:
	p, err := c.Decrypt(ctx, dk.CiphertextBlob, ec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Plaintext == dk.Plaintext)
}
