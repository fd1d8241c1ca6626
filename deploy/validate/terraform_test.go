package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// tfFile is one parsed Terraform file with its source, for the text of expressions.
type tfFile struct {
	name string
	src  []byte
	body *hclsyntax.Body
}

func parseTF(name string, src []byte) (*tfFile, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, diags
	}
	return &tfFile{name: name, src: src, body: f.Body.(*hclsyntax.Body)}, nil
}

// text is an expression's source.
func (f *tfFile) text(e hclsyntax.Expression) string {
	r := e.Range()
	return strings.TrimSpace(string(f.src[r.Start.Byte:r.End.Byte]))
}

// walk calls fn on every block of the body and its descendants with its path of types.
func walk(body *hclsyntax.Body, path []string, fn func(path []string, b *hclsyntax.Block)) {
	for _, b := range body.Blocks {
		p := append(slices.Clone(path), b.Type)
		fn(p, b)
		walk(b.Body, p, fn)
	}
}

// resources returns the resource (or data) blocks of a type across files.
func resources(files []*tfFile, kind, typ string) (out []struct {
	f *tfFile
	b *hclsyntax.Block
}) {
	for _, f := range files {
		for _, b := range f.body.Blocks {
			if b.Type == kind && len(b.Labels) > 0 && b.Labels[0] == typ {
				out = append(out, struct {
					f *tfFile
					b *hclsyntax.Block
				}{f, b})
			}
		}
	}
	return out
}

// attr is the source of an attribute found at a path of nested block types below b
// ("versioning_configuration.status"), "" when absent. With several matching blocks,
// the texts are joined by newlines.
func attr(f *tfFile, b *hclsyntax.Block, path string) string {
	parts := strings.Split(path, ".")
	var out []string
	var visit func(body *hclsyntax.Body, rest []string)
	visit = func(body *hclsyntax.Body, rest []string) {
		if len(rest) == 1 {
			if a, ok := body.Attributes[rest[0]]; ok {
				out = append(out, f.text(a.Expr))
			}
			return
		}
		for _, child := range body.Blocks {
			if child.Type == rest[0] {
				visit(child.Body, rest[1:])
			}
		}
	}
	visit(b.Body, parts)
	return strings.Join(out, "\n")
}

// checkModule returns what a destination module gets wrong: the invariants that
// matter for the replicator's destinations.
func checkModule(files []*tfFile) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	providers := 0
	for _, f := range files {
		walk(f.body, nil, func(path []string, b *hclsyntax.Block) {
			switch {
			case b.Type == "variable":
				if _, ok := b.Body.Attributes["description"]; !ok {
					add("%s: variable %s has no description", f.name, b.Labels[0])
				}
				if _, ok := b.Body.Attributes["type"]; !ok {
					add("%s: variable %s has no type", f.name, b.Labels[0])
				}
			case b.Type == "required_providers":
				for name, a := range b.Body.Attributes {
					providers++
					if !strings.Contains(f.text(a.Expr), "version") {
						add("%s: provider %s has no version constraint", f.name, name)
					}
				}
			}
		})
	}
	if providers == 0 {
		add("no required_providers")
	}
	// AWS.
	if s3 := resources(files, "resource", "aws_s3_bucket"); len(s3) > 0 {
		if v := resources(files, "resource", "aws_s3_bucket_versioning"); len(v) == 0 || attr(v[0].f, v[0].b, "versioning_configuration.status") != `"Enabled"` {
			add("S3: versioning is not enabled")
		}
		if e := resources(files, "resource", "aws_s3_bucket_server_side_encryption_configuration"); len(e) == 0 ||
			attr(e[0].f, e[0].b, "rule.apply_server_side_encryption_by_default.sse_algorithm") != `"aws:kms"` {
			add("S3: default encryption is not SSE-KMS")
		}
		if pab := resources(files, "resource", "aws_s3_bucket_public_access_block"); len(pab) == 0 {
			add("S3: public access is not blocked")
		} else {
			for _, k := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
				if attr(pab[0].f, pab[0].b, k) != "true" {
					add("S3: %s is not true", k)
				}
			}
		}
		lc := resources(files, "resource", "aws_s3_bucket_lifecycle_configuration")
		if len(lc) == 0 {
			add("S3: no lifecycle rules")
		} else {
			f, b := lc[0].f, lc[0].b
			for _, sub := range []string{"staging/", "undo/"} {
				found := false
				for _, r := range b.Body.Blocks {
					if r.Type == "rule" && strings.Contains(attr(f, r, "filter.prefix"), sub) && attr(f, r, "expiration.days") != "" {
						found = true
					}
				}
				if !found {
					add("S3: no lifecycle rule expires .replicator/%s", sub)
				}
			}
			if attr(f, b, "rule.abort_incomplete_multipart_upload.days_after_initiation") == "" {
				add("S3: incomplete multipart uploads are never aborted")
			}
		}
	}
	for _, d := range resources(files, "data", "aws_iam_policy_document") {
		for _, st := range d.b.Body.Blocks {
			if st.Type != "statement" {
				continue
			}
			for _, action := range strings.Split(attr(d.f, st, "actions"), ",") {
				a := strings.Trim(strings.TrimSpace(strings.Trim(action, "[] \n")), `"`)
				if a == "*" || strings.HasSuffix(a, ":*") || strings.Contains(a, "*") {
					add("IAM: wildcard action %q", a)
				}
			}
		}
	}
	// GCP.
	for _, g := range resources(files, "resource", "google_storage_bucket") {
		if attr(g.f, g.b, "versioning.enabled") != "true" {
			add("GCS: versioning is not enabled")
		}
		if attr(g.f, g.b, "encryption.default_kms_key_name") == "" {
			add("GCS: no CMEK key")
		}
		if attr(g.f, g.b, "public_access_prevention") != `"enforced"` {
			add("GCS: public access prevention is not enforced")
		}
		prefixes := attr(g.f, g.b, "lifecycle_rule.condition.matches_prefix")
		for _, sub := range []string{"staging/", "undo/"} {
			if !strings.Contains(prefixes, sub) {
				add("GCS: no lifecycle rule deletes .replicator/%s", sub)
			}
		}
	}
	for _, r := range resources(files, "resource", "google_project_iam_custom_role") {
		if strings.Contains(attr(r.f, r.b, "permissions"), "*") {
			add("GCP: wildcard permission in %s", r.b.Labels[1])
		}
	}
	// Azure.
	for _, a := range resources(files, "resource", "azurerm_storage_account") {
		for k, want := range map[string]string{"infrastructure_encryption_enabled": "true", "allow_nested_items_to_be_public": "false",
			"blob_properties.versioning_enabled": "true", "min_tls_version": `"TLS1_2"`} {
			if got := attr(a.f, a.b, k); got != want {
				add("Azure: %s = %q; want %s", k, got, want)
			}
		}
	}
	if mp := resources(files, "resource", "azurerm_storage_management_policy"); len(resources(files, "resource", "azurerm_storage_account")) > 0 {
		if len(mp) == 0 {
			add("Azure: no management policy")
		} else {
			prefixes := attr(mp[0].f, mp[0].b, "rule.filters.prefix_match")
			for _, sub := range []string{"staging/", "undo/"} {
				if !strings.Contains(prefixes, sub) {
					add("Azure: no management rule deletes .replicator/%s", sub)
				}
			}
		}
	}
	if len(resources(files, "resource", "azurerm_storage_encryption_scope")) > 0 {
		for _, r := range resources(files, "resource", "azurerm_storage_container") {
			if attr(r.f, r.b, "default_encryption_scope") == "" || !strings.Contains(attr(r.f, r.b, "encryption_scope_override_enabled"), "false") {
				add("Azure: container %s does not enforce the encryption scope (default_encryption_scope, encryption_scope_override_enabled = false): copies would not use it", r.b.Labels[1])
			}
		}
	}
	for _, r := range resources(files, "resource", "azurerm_role_definition") {
		if strings.Contains(attr(r.f, r.b, "permissions.actions")+attr(r.f, r.b, "permissions.data_actions"), "*") {
			add("Azure: wildcard action in role %s", r.b.Labels[1])
		}
	}
	for _, r := range resources(files, "resource", "azurerm_role_assignment") {
		if role := attr(r.f, r.b, "role_definition_name"); role == `"Owner"` || role == `"Contributor"` || role == `"Storage Account Contributor"` {
			add("Azure: role %s is broader than blob data access", role)
		}
	}
	return problems
}

func loadDir(t *testing.T, dir string) []*tfFile {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	if len(paths) == 0 {
		t.Fatalf("no .tf files in %s", dir)
	}
	var files []*tfFile
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parseTF(p, src)
		if err != nil {
			t.Fatalf("HCL refuses %s: %v", p, err)
		}
		files = append(files, f)
	}
	return files
}

// TestTerraformModules parses every .tf file with HashiCorp's HCL parser and checks
// each destination module: versioning, encryption at rest, lifecycle rules for the
// replicator's staging and undo objects (and aborted multipart uploads), no public
// access, least-privilege identities without wildcard actions, described and typed
// variables, pinned providers.
func TestTerraformModules(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy", "terraform")
	dirs, _ := filepath.Glob(filepath.Join(root, "modules", "*"))
	dirs = append(dirs, filepath.Join(root, "examples", "three-clouds"))
	if len(dirs) < 4 {
		t.Fatalf("modules found: %v", dirs)
	}
	for _, dir := range dirs {
		files := loadDir(t, dir)
		for _, p := range checkModule(files) {
			t.Errorf("%s: %s", filepath.Base(dir), p)
		}
	}
}

// TestTerraformCheckerCatchesRegressions runs the checks on a module with the
// mistakes they exist for.
func TestTerraformCheckerCatchesRegressions(t *testing.T) {
	bad := `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}
variable "bucket" {}
resource "aws_s3_bucket" "b" { bucket = var.bucket }
resource "aws_s3_bucket_versioning" "b" {
  bucket = aws_s3_bucket.b.id
  versioning_configuration { status = "Suspended" }
}
data "aws_iam_policy_document" "w" {
  statement {
    actions   = ["s3:GetObject", "s3:*"]
    resources = ["*"]
  }
}
`
	f, err := parseTF("bad.tf", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(checkModule([]*tfFile{f}), "\n")
	for _, want := range []string{"versioning is not enabled", "not SSE-KMS", "public access is not blocked", "no lifecycle rules",
		`wildcard action "s3:*"`, "no version constraint", "has no description"} {
		if !strings.Contains(problems, want) {
			t.Errorf("the checker missed %q; it said:\n%s", want, problems)
		}
	}
}
