package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-build/strata/errs"
)

// Buildx is a docker buildx builder as strata reaches it.
type Buildx struct {
	Name   string
	Driver string
	// Addr is the BuildKit address of the builder's first node.
	Addr string
	// TLS holds the remote driver's cacert, cert, key and servername options.
	TLS TLS
}

// buildxNodeGroup is the part of buildx's store record (store.NodeGroup in
// github.com/docker/buildx/store, one JSON file per builder) strata reads.
type buildxNodeGroup struct {
	Name   string
	Driver string
	Nodes  []struct {
		Name       string
		Endpoint   string
		DriverOpts map[string]string
	}
}

// BuildxDir is where buildx keeps its builders: BUILDX_CONFIG, else
// $DOCKER_CONFIG/buildx, else ~/.docker/buildx, as buildx decides it.
func BuildxDir() string {
	if d := os.Getenv("BUILDX_CONFIG"); d != "" {
		return d
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "buildx")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "buildx")
}

// LookupBuildx reads the builder called name from buildx's store.
func LookupBuildx(name string) (*Buildx, error) {
	dir := filepath.Join(BuildxDir(), "instances")
	// buildx stores names in lower case.
	dt, err := os.ReadFile(filepath.Join(dir, strings.ToLower(filepath.Base(name))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.WithHint(fmt.Errorf("%w: --builder %s is neither an address (unix://, tcp://, docker-container://...) nor a buildx builder in %s", errs.ErrBuilder, name, dir),
			knownBuildx(dir))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: buildx builder %s: %v", errs.ErrBuilder, name, err)
	}
	var ng buildxNodeGroup
	if err := json.Unmarshal(dt, &ng); err != nil {
		return nil, errs.WithHint(fmt.Errorf("%w: buildx builder %s: %s is not a buildx store record: %v", errs.ErrBuilder, name, filepath.Join(dir, name), err),
			"recreate it with 'docker buildx create'")
	}
	if len(ng.Nodes) == 0 {
		return nil, errs.WithHint(fmt.Errorf("%w: buildx builder %s has no nodes", errs.ErrBuilder, name), "add one with 'docker buildx create --append'")
	}
	n := ng.Nodes[0]
	bx := &Buildx{Name: ng.Name, Driver: ng.Driver}
	switch ng.Driver {
	case "remote":
		bx.Addr = n.Endpoint
		o := n.DriverOpts
		bx.TLS = TLS{CACert: o["cacert"], Cert: o["cert"], Key: o["key"], ServerName: o["servername"]}
	case "docker-container":
		// buildx names the container buildx_buildkit_<node>, in the
		// docker context the node's endpoint names.
		bx.Addr = "docker-container://buildx_buildkit_" + n.Name
		if ctx := n.Endpoint; ctx != "" && ctx != "default" && !strings.Contains(ctx, "://") {
			bx.Addr += "?context=" + ctx
		}
	default:
		return nil, errs.WithHint(fmt.Errorf("%w: buildx builder %s uses the %s driver, which has no BuildKit address strata can dial", errs.ErrBuilder, name, ng.Driver),
			driverHint(ng.Driver, n.Name, n.DriverOpts["namespace"]))
	}
	return bx, nil
}

func driverHint(driver, node, namespace string) string {
	if driver == "kubernetes" {
		// buildx names the deployment after the node, '_' made '-'.
		sel := "app=" + strings.ReplaceAll(node, "_", "-")
		if namespace == "" {
			namespace = "NAMESPACE"
		}
		return fmt.Sprintf("give one of its pods as --builder kube-pod://POD?namespace=%s ('kubectl get pods -n %s -l %s' lists them)", namespace, namespace, sel)
	}
	return "use a remote or docker-container builder, or give its buildkitd address with --builder"
}

// knownBuildx lists the builders in dir, for an unknown name.
func knownBuildx(dir string) string {
	ents, err := os.ReadDir(dir)
	var names []string
	if err == nil {
		for _, e := range ents {
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "buildx knows no builders there; create one with 'docker buildx create --driver remote tcp://HOST:PORT' or give an address"
	}
	return "buildx knows: " + strings.Join(names, ", ")
}
