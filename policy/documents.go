package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// documents are the users' policy documents as the store holds them:
// account → user → that user's documents.
type documents map[string]map[string]*userDocuments

// userDocuments are one user's documents.
type userDocuments struct {
	texts        map[string]string // policy name → document text
	value        []any             // [{"name": …, "document": …}] sorted by name, as the evaluator reads it
	readsContext bool              // a condition reads the request context
}

// newDocumentStore is an empty store for data.raftkms.user_policies. The
// store keeps the values written to it as they are (no JSON round trip):
// they are built here and never changed after.
func newDocumentStore() storage.Store {
	return inmem.NewFromObjectWithOpts(map[string]any{"raftkms": map[string]any{"user_policies": map[string]any{}}},
		inmem.OptRoundTripOnWrite(false))
}

// update returns the documents users describes and the accounts whose
// documents differ from d. Only a user whose documents changed has them
// parsed again; d itself is not modified.
func (d documents) update(users []UserPolicy) (documents, map[string]bool, error) {
	texts := map[string]map[string]map[string]string{}
	for _, p := range users {
		if texts[p.Account] == nil {
			texts[p.Account] = map[string]map[string]string{}
		}
		if texts[p.Account][p.User] == nil {
			texts[p.Account][p.User] = map[string]string{}
		}
		texts[p.Account][p.User][p.Name] = p.Document
	}
	next := make(documents, len(texts))
	changed := map[string]bool{}
	for account, byUser := range texts {
		old := d[account]
		next[account] = make(map[string]*userDocuments, len(byUser))
		for user, t := range byUser {
			if prev := old[user]; prev != nil && maps.Equal(prev.texts, t) {
				next[account][user] = prev
				continue
			}
			u, err := parseUserDocuments(account, user, t)
			if err != nil {
				return nil, nil, err
			}
			next[account][user] = u
			changed[account] = true
		}
		if len(old) != len(byUser) {
			changed[account] = true
		}
	}
	for account := range d {
		if next[account] == nil {
			changed[account] = true
		}
	}
	return next, changed, nil
}

func parseUserDocuments(account, user string, texts map[string]string) (*userDocuments, error) {
	u := &userDocuments{texts: texts}
	for _, name := range slices.Sorted(maps.Keys(texts)) {
		doc, ctxDep, err := ParseDocument(texts[name])
		if err != nil {
			return nil, fmt.Errorf("user %s/%s policy %s: %w", account, user, name, err)
		}
		u.value = append(u.value, map[string]any{"name": name, "document": doc})
		u.readsContext = u.readsContext || ctxDep
	}
	return u, nil
}

// users lists the users ("account/user") whose documents read the request
// context, and those with any document.
func (d documents) users() (context, withDocs map[string]bool) {
	context, withDocs = map[string]bool{}, map[string]bool{}
	for account, byUser := range d {
		for user, u := range byUser {
			withDocs[account+"/"+user] = true
			if u.readsContext {
				context[account+"/"+user] = true
			}
		}
	}
	return context, withDocs
}

// writeDocuments rewrites, in one transaction, the accounts of d that
// changed.
func writeDocuments(ctx context.Context, store storage.Store, d documents, changed map[string]bool) error {
	if len(changed) == 0 {
		return nil
	}
	return storage.Txn(ctx, store, storage.WriteParams, func(txn storage.Transaction) error {
		for account := range changed {
			path := storage.Path{"raftkms", "user_policies", account}
			byUser, ok := d[account]
			if !ok {
				if err := store.Write(ctx, txn, storage.RemoveOp, path, nil); err != nil && !storage.IsNotFound(err) {
					return err
				}
				continue
			}
			v := make(map[string]any, len(byUser))
			for user, u := range byUser {
				v[user] = u.value
			}
			if err := store.Write(ctx, txn, storage.AddOp, path, v); err != nil {
				return err
			}
		}
		return nil
	})
}
