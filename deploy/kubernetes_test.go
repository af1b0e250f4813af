package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/startup"
)

// The parts of the Kubernetes objects the checks read. Decoding is
// field-by-field, not against the API's schema: there is no cluster or
// schema download here, so `kubectl apply --dry-run=server` was not run.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       spec              `yaml:"spec"`
	Resources  []string          `yaml:"resources"` // Kustomization
}

type spec struct {
	Replicas *int     `yaml:"replicas"`
	Selector selector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
	// HorizontalPodAutoscaler
	ScaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	// PodDisruptionBudget
	MaxUnavailable any `yaml:"maxUnavailable"`
	MinAvailable   any `yaml:"minAvailable"`
	// NetworkPolicy
	PodSelector *selector `yaml:"podSelector"`
	PolicyTypes []string  `yaml:"policyTypes"`
	Ingress     []npRule  `yaml:"ingress"`
	Egress      []npRule  `yaml:"egress"`
	// Ingress
	IngressClassName string `yaml:"ingressClassName"`
	TLS              []struct {
		Hosts      []string `yaml:"hosts"`
		SecretName string   `yaml:"secretName"`
	} `yaml:"tls"`
	Rules []struct {
		Host string `yaml:"host"`
		HTTP struct {
			Paths []struct {
				Path     string `yaml:"path"`
				PathType string `yaml:"pathType"`
				Backend  struct {
					Service struct {
						Name string `yaml:"name"`
						Port struct {
							Name   string `yaml:"name"`
							Number int    `yaml:"number"`
						} `yaml:"port"`
					} `yaml:"service"`
				} `yaml:"backend"`
			} `yaml:"paths"`
		} `yaml:"http"`
	} `yaml:"rules"`
	// Service
	Ports []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

// npRule is a NetworkPolicy ingress or egress rule.
type npRule struct {
	From  []npPeer `yaml:"from"`
	To    []npPeer `yaml:"to"`
	Ports []struct {
		Protocol string `yaml:"protocol"`
		Port     any    `yaml:"port"`
	} `yaml:"ports"`
}

type npPeer struct {
	NamespaceSelector *selector `yaml:"namespaceSelector"`
	PodSelector       *selector `yaml:"podSelector"`
	IPBlock           any       `yaml:"ipBlock"`
}

// selector is a label selector: {matchLabels: {...}} in Deployments and
// PodDisruptionBudgets, a plain label map in Services.
type selector struct {
	MatchLabels map[string]string
}

func (s *selector) UnmarshalYAML(n *yaml.Node) error {
	var full struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := n.Decode(&full); err == nil && full.MatchLabels != nil {
		s.MatchLabels = full.MatchLabels
		return nil
	}
	return n.Decode(&s.MatchLabels)
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional bool   `yaml:"optional"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

func loadManifests(t *testing.T) map[string][]object {
	t.Helper()
	dir := filepath.Join(root(t), "deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	out := map[string][]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s parses as YAML", filepath.Base(f))
			require.NotEmpty(t, o.APIVersion, "%s: apiVersion", filepath.Base(f))
			require.NotEmpty(t, o.Kind, "%s: kind", filepath.Base(f))
			if o.Kind != "Kustomization" {
				require.NotEmpty(t, o.Metadata.Name, "%s: metadata.name", filepath.Base(f))
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], o)
		}
	}
	return out
}

func find(t *testing.T, m map[string][]object, kind, name string) object {
	t.Helper()
	for _, objs := range m {
		for _, o := range objs {
			if o.Kind == kind && o.Metadata.Name == name {
				return o
			}
		}
	}
	t.Fatalf("no %s %q in deploy/kubernetes", kind, name)
	return object{}
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)

	// kustomization.yaml lists every manifest but the example Secret.
	kust := find(t, m, "Kustomization", "")
	for f := range m {
		switch f {
		case "kustomization.yaml", "secret.example.yaml", "ingress.example.yaml":
			assert.NotContains(t, kust.Resources, f)
		default:
			assert.Contains(t, kust.Resources, f, "kustomization.yaml leaves out %s", f)
		}
	}
	for _, r := range kust.Resources {
		assert.Contains(t, m, r, "kustomization.yaml lists a missing file")
	}

	secret := find(t, m, "Secret", "token-refresher")
	providers := find(t, m, "ConfigMap", "token-refresher-providers")
	entries, err := registry.Parse([]byte(providers.Data["providers.yaml"]), "", os.Getenv)
	require.NoError(t, err, "the providers ConfigMap is a valid providers file")
	require.NotEmpty(t, entries)
	providersDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(providersDir, "providers.yaml"), []byte(providers.Data["providers.yaml"]), 0o644))

	known := settings(t)
	// env resolves a container's environment with the example Secret, and
	// PROVIDERS_FILE pointing at the ConfigMap's content.
	env := func(c container) config.Getenv {
		vars := map[string]string{}
		for _, e := range c.Env {
			assert.True(t, known[e.Name], "%s: %s is not a setting the binaries read", c.Name, e.Name)
			switch {
			case e.Value != nil:
				vars[e.Name] = *e.Value
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				assert.Equal(t, "token-refresher", ref.Name, "%s: %s", c.Name, e.Name)
				v, ok := secret.StringData[ref.Key]
				assert.True(t, ok, "%s: %s reads key %q, which the Secret lacks", c.Name, e.Name, ref.Key)
				vars[e.Name] = v
			default:
				t.Errorf("%s: %s has neither value nor secretKeyRef", c.Name, e.Name)
			}
		}
		for _, secretEnv := range []string{"WMS_DB_DSN", "IE_DB_DSN", "REDIS_URL", "API_TOKEN", "DASHBOARD_PASSWORD", "OUTBOX_KEY", "FINGERPRINT_KEY"} {
			for _, e := range c.Env {
				if e.Name == secretEnv {
					assert.Nil(t, e.Value, "%s: %s must come from the Secret, not a plain value", c.Name, secretEnv)
				}
			}
		}
		if p := vars["PROVIDERS_FILE"]; p != "" {
			vars["PROVIDERS_FILE"] = filepath.Join(providersDir, filepath.Base(p))
		}
		return func(k string) string { return vars[k] }
	}

	checkPod := func(d object, bin string) container {
		t.Helper()
		pod := d.Spec.Template.Spec
		assert.Equal(t, d.Spec.Selector.MatchLabels, intersect(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels),
			"%s: the selector matches the pod's labels", d.Metadata.Name)
		require.NotNil(t, pod.SecurityContext.RunAsNonRoot, d.Metadata.Name)
		assert.True(t, *pod.SecurityContext.RunAsNonRoot, "%s runs as non-root", d.Metadata.Name)
		require.Len(t, pod.Containers, 1)
		c := pod.Containers[0]
		assert.Equal(t, []string{"/usr/local/bin/" + bin}, c.Command, "%s runs the %s binary of the image", d.Metadata.Name, bin)
		_, err := os.Stat(filepath.Join(root(t), "cmd", bin, "main.go"))
		assert.NoError(t, err)
		require.NotNil(t, c.LivenessProbe, "%s: liveness probe", d.Metadata.Name)
		require.NotNil(t, c.ReadinessProbe, "%s: readiness probe", d.Metadata.Name)
		assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		require.Len(t, c.Ports, 1)
		assert.Equal(t, c.Ports[0].Name, c.LivenessProbe.HTTPGet.Port)
		assert.Equal(t, c.Ports[0].Name, c.ReadinessProbe.HTTPGet.Port)
		require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
		assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
		require.NotNil(t, c.SecurityContext.ReadOnlyRootFilesystem)
		assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
		assert.NotEmpty(t, c.Resources.Requests["cpu"], "%s: a CPU request (the HPA needs one)", d.Metadata.Name)
		var mounted bool
		for _, v := range pod.Volumes {
			if v.ConfigMap.Name == "token-refresher-providers" {
				for _, vm := range c.VolumeMounts {
					mounted = mounted || vm.Name == v.Name
				}
			}
		}
		assert.True(t, mounted, "%s mounts the providers ConfigMap", d.Metadata.Name)
		return c
	}

	scanner := find(t, m, "Deployment", "token-refresher-scanner")
	require.NotNil(t, scanner.Spec.Replicas)
	assert.Equal(t, 1, *scanner.Spec.Replicas, "one scanner is enough")
	sc := checkPod(scanner, "scanner")
	scEnv := env(sc)
	_, err = startup.LoadScanner(scEnv)
	assert.NoError(t, err, "the scanner starts with this environment")
	assertHTTPAddrMatchesPort(t, sc, scEnv)

	refresher := find(t, m, "Deployment", "token-refresher-refresher")
	rc := checkPod(refresher, "refresher")
	rcEnv := env(rc)
	cfg, err := startup.LoadRefresher(rcEnv)
	require.NoError(t, err, "the refresher starts with this environment")
	assertHTTPAddrMatchesPort(t, rc, rcEnv)
	assert.NotEmpty(t, cfg.APIToken, "the API is on")
	grace := refresher.Spec.Template.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, grace, "the refresher sets terminationGracePeriodSeconds")
	assert.GreaterOrEqual(t, time.Duration(*grace)*time.Second, cfg.DrainTimeout+5*time.Second,
		"SIGKILL must not come before DRAIN_TIMEOUT plus a margin")
	assert.LessOrEqual(t, time.Duration(*grace)*time.Second, cfg.DrainTimeout+30*time.Second,
		"the grace period matches the drain timeout, not much more")

	hpa := find(t, m, "HorizontalPodAutoscaler", "token-refresher-refresher")
	assert.Equal(t, "autoscaling/v2", hpa.APIVersion)
	assert.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	assert.Equal(t, refresher.Metadata.Name, hpa.Spec.ScaleTargetRef.Name)
	assert.GreaterOrEqual(t, hpa.Spec.MinReplicas, 2, "a PDB with one replica blocks every drain")
	assert.Greater(t, hpa.Spec.MaxReplicas, hpa.Spec.MinReplicas)

	pdb := find(t, m, "PodDisruptionBudget", "token-refresher-refresher")
	assert.Equal(t, "policy/v1", pdb.APIVersion)
	assert.True(t, pdb.Spec.MaxUnavailable != nil || pdb.Spec.MinAvailable != nil)
	assert.Equal(t, refresher.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels, "the PDB covers the refresher's pods")

	svc := find(t, m, "Service", "token-refresher")
	assert.Equal(t, refresher.Spec.Selector.MatchLabels, svc.Spec.Selector.MatchLabels)
}

func intersect(sel, labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range sel {
		if labels[k] == v {
			out[k] = v
		}
	}
	return out
}

func assertHTTPAddrMatchesPort(t *testing.T, c container, env config.Getenv) {
	t.Helper()
	addr := env("HTTP_ADDR")
	require.NotEmpty(t, addr, "%s serves HTTP (probes, metrics)", c.Name)
	_, port, ok := strings.Cut(addr, ":")
	require.True(t, ok)
	assert.Equal(t, port, strconv.Itoa(c.Ports[0].ContainerPort), "%s: HTTP_ADDR and containerPort agree", c.Name)
}

// TestKubernetesNetworkPolicy: the policy selects the scanner's and the
// refresher's pods; ingress comes only from namespaces labelled
// token-refresher.io/access (monitoring, operator) to the pods' HTTP port;
// egress is exactly DNS, MySQL, Redis and Sentinel, and HTTPS.
func TestKubernetesNetworkPolicy(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	np := find(t, m, "NetworkPolicy", "token-refresher")
	assert.Equal(t, "networking.k8s.io/v1", np.APIVersion)
	require.NotNil(t, np.Spec.PodSelector)
	require.NotEmpty(t, np.Spec.PodSelector.MatchLabels, "an empty podSelector would select every pod of the namespace")
	var ports []int
	for _, name := range []string{"token-refresher-scanner", "token-refresher-refresher"} {
		d := find(t, m, "Deployment", name)
		assert.Equal(t, np.Spec.PodSelector.MatchLabels, intersect(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Metadata.Labels),
			"the policy selects the pods of %s", name)
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports = append(ports, p.ContainerPort)
			}
		}
	}
	assert.ElementsMatch(t, []string{"Ingress", "Egress"}, np.Spec.PolicyTypes, "both directions are restricted")

	type port struct {
		proto string
		port  int
	}
	portsOf := func(r npRule, what string) []port {
		require.NotEmpty(t, r.Ports, "%s: a rule without ports allows every port", what)
		var out []port
		for _, p := range r.Ports {
			n, ok := p.Port.(int)
			require.True(t, ok, "%s: port %v is a number", what, p.Port)
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, port{proto, n})
		}
		return out
	}

	require.NotEmpty(t, np.Spec.Ingress)
	access := map[string]bool{}
	for _, r := range np.Spec.Ingress {
		require.NotEmpty(t, r.From, "an ingress rule without from admits every source")
		for _, peer := range r.From {
			assert.Nil(t, peer.IPBlock, "no address ranges: namespaces are admitted by label")
			assert.Nil(t, peer.PodSelector, "no pod selectors: namespaces are admitted by label")
			require.NotNil(t, peer.NamespaceSelector, "a namespaceSelector")
			require.Len(t, peer.NamespaceSelector.MatchLabels, 1, "exactly the access label (an empty selector admits every namespace)")
			v, ok := peer.NamespaceSelector.MatchLabels["token-refresher.io/access"]
			require.True(t, ok, "the access label")
			access[v] = true
		}
		for _, p := range portsOf(r, "ingress") {
			assert.Equal(t, "TCP", p.proto)
			assert.Contains(t, ports, p.port, "ingress to a port the pods listen on")
		}
	}
	assert.Equal(t, map[string]bool{"monitoring": true, "operator": true}, access)

	var egress []port
	for _, r := range np.Spec.Egress {
		egress = append(egress, portsOf(r, "egress")...)
	}
	assert.ElementsMatch(t, []port{
		{"UDP", 53}, {"TCP", 53}, // DNS
		{"TCP", 3306},                 // MySQL
		{"TCP", 6379}, {"TCP", 26379}, // Redis, Sentinel
		{"TCP", 443}, // marketplaces, webhooks
	}, egress, "egress is exactly DNS, MySQL, Redis, Sentinel and HTTPS")
}

// TestKubernetesIngressExample: the example Ingress (not in the
// kustomization) parses, terminates TLS with a Secret for every host it
// routes, and sends /v1/ and /monitoring, and nothing else, to the
// refresher's Service.
func TestKubernetesIngressExample(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	require.Len(t, m["ingress.example.yaml"], 1)
	ing := m["ingress.example.yaml"][0]
	assert.Equal(t, "Ingress", ing.Kind)
	assert.Equal(t, "networking.k8s.io/v1", ing.APIVersion)
	svc := find(t, m, "Service", "token-refresher")
	require.Len(t, svc.Spec.Ports, 1)

	require.NotEmpty(t, ing.Spec.TLS, "TLS is terminated here")
	tlsHosts := map[string]bool{}
	for _, tls := range ing.Spec.TLS {
		assert.NotEmpty(t, tls.SecretName, "the TLS Secret")
		for _, h := range tls.Hosts {
			tlsHosts[h] = true
		}
	}
	var paths []string
	require.NotEmpty(t, ing.Spec.Rules)
	for _, r := range ing.Spec.Rules {
		assert.True(t, tlsHosts[r.Host], "host %q is covered by TLS", r.Host)
		for _, p := range r.HTTP.Paths {
			paths = append(paths, p.Path)
			assert.Equal(t, "Prefix", p.PathType)
			assert.Equal(t, svc.Metadata.Name, p.Backend.Service.Name, "%s goes to the refresher's Service", p.Path)
			assert.True(t, p.Backend.Service.Port.Name == svc.Spec.Ports[0].Name || p.Backend.Service.Port.Number == svc.Spec.Ports[0].Port,
				"%s: the Service's port", p.Path)
		}
	}
	assert.ElementsMatch(t, []string{"/v1/", "/monitoring"}, paths, "the API and the dashboard, not /metrics")
}
