package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// ownVersion is the API version of raftkms's own actions.
const ownVersion = "raftkms-2026-11-29"

// clusterCommand is `kmsctl cluster …`: administration of the cluster, for
// the root AccessKey of the system account.
func clusterCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Administer the cluster: status, members, snapshots"}
	call := func(cmd *cobra.Command, action string, params map[string]string) error {
		c, err := newClient(g)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
		defer cancel()
		body, err := c.CallVersion(ctx, ownVersion, action, params)
		if err != nil {
			return err
		}
		return printJSON(cmd, body)
	}
	status := &cobra.Command{Use: "status", Short: "Show the answering node's status and the members (DescribeCluster)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return call(cmd, "DescribeCluster", nil) }}
	members := &cobra.Command{Use: "members", Short: "List the members: id, cluster address, voter, leader", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			body, err := c.CallVersion(ctx, ownVersion, "DescribeCluster", nil)
			if err != nil {
				return err
			}
			var out struct{ Members json.RawMessage }
			if err := json.Unmarshal(body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out.Members)
		}}
	var nodeID string
	remove := &cobra.Command{Use: "remove-node", Short: "Remove a node from the cluster (RemoveClusterNode)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, "RemoveClusterNode", map[string]string{"NodeId": nodeID})
		}}
	remove.Flags().StringVar(&nodeID, "node-id", "", "the node to remove (NodeId)")
	remove.MarkFlagRequired("node-id")
	var target string
	transfer := &cobra.Command{Use: "transfer-leadership", Short: "Hand leadership to another voter (TransferClusterLeadership)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := map[string]string{}
			if target != "" {
				p["NodeId"] = target
			}
			return call(cmd, "TransferClusterLeadership", p)
		}}
	transfer.Flags().StringVar(&target, "node-id", "", "the node to lead (NodeId); default any suitable voter")
	cmd.AddCommand(status, members, remove, transfer, snapshotCommand(g))
	return cmd
}

func snapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Save or restore the whole cluster state (encrypted under the root key)"}
	save := &cobra.Command{Use: "save FILE", Short: "Download a snapshot of the cluster state to FILE (SaveClusterSnapshot)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			// Write beside the target and rename, so FILE is never half written.
			tmp, err := os.CreateTemp(filepath.Dir(args[0]), ".snapshot-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			ctx, cancel := context.WithTimeout(cmd.Context(), g.longTimeout())
			defer cancel()
			if err := c.Download(ctx, ownVersion, "SaveClusterSnapshot", nil, tmp); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Chmod(tmp.Name(), 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), args[0]); err != nil {
				return err
			}
			fi, _ := os.Stat(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "{\n  \"File\": %q,\n  \"Bytes\": %d\n}\n", args[0], fi.Size())
			return nil
		}}
	restore := &cobra.Command{Use: "restore FILE", Short: "Replace the whole cluster state with the snapshot in FILE (RestoreClusterSnapshot)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), g.longTimeout())
			defer cancel()
			body, err := c.Upload(ctx, ownVersion, "RestoreClusterSnapshot", nil, f)
			if err != nil {
				return err
			}
			return printJSON(cmd, body)
		}}
	cmd.AddCommand(save, restore)
	return cmd
}

func printJSON(cmd *cobra.Command, body []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		out.Reset()
		out.Write(body)
	}
	out.WriteByte('\n')
	_, err := cmd.OutOrStdout().Write(out.Bytes())
	return err
}
