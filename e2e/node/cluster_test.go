//go:build e2enode

/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/netlab"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// nodeName is the kubelet's node.
const nodeName = "palisade-node"

// podSubnet is the CNI's range for pods (host-local IPAM), inside the
// node namespace Isolate made, so no address here meets the machine's.
const podSubnet = "10.96.7.0/24"

// tools are the programs the story runs; make e2e-node builds them and
// passes their paths.
type tools struct {
	kubectl, kubelet, controllerManager, scheduler string
	containerd                                     string // directory: containerd, containerd-shim-runc-v2, ctr
	images                                         string // OCI archive of the test's images (hack/images)
	imageTag                                       string
	kustomization                                  string // directory of the kustomization hack/images wrote
}

func toolsFromEnv(t *testing.T) tools {
	tl := tools{
		kubectl:           os.Getenv("PALISADE_KUBECTL"),
		kubelet:           os.Getenv("PALISADE_KUBELET"),
		controllerManager: os.Getenv("PALISADE_KUBE_CONTROLLER_MANAGER"),
		scheduler:         os.Getenv("PALISADE_KUBE_SCHEDULER"),
		containerd:        os.Getenv("PALISADE_CONTAINERD_DIR"),
		images:            os.Getenv("PALISADE_NODE_IMAGES"),
		imageTag:          os.Getenv("PALISADE_NODE_IMAGE_TAG"),
	}
	if tl.images != "" {
		tl.kustomization = filepath.Dir(tl.images)
	}
	var missing []string
	for name, p := range map[string]string{
		"PALISADE_KUBECTL": tl.kubectl, "PALISADE_KUBELET": tl.kubelet,
		"PALISADE_KUBE_CONTROLLER_MANAGER": tl.controllerManager, "PALISADE_KUBE_SCHEDULER": tl.scheduler,
		"PALISADE_CONTAINERD_DIR": tl.containerd, "PALISADE_NODE_IMAGES": tl.images,
	} {
		if p == "" {
			missing = append(missing, name)
		} else if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", name, err))
		}
	}
	if tl.imageTag == "" {
		missing = append(missing, "PALISADE_NODE_IMAGE_TAG")
	}
	if len(missing) > 0 {
		t.Skipf("the real-node story runs under `make e2e-node`, which builds its tools and images; missing: %s", strings.Join(missing, ", "))
	}
	for _, bin := range []string{"runc", "nsenter", "unshare", "bpftool", "git"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed: %v (make e2e-node installs it)", bin, err)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		t.Fatalf("the CNI plugins are needed (Debian's containernetworking-plugins; make e2e-node installs them): %v", err)
	}
	return tl
}

// cluster is one real node and its control plane: kube-apiserver and
// etcd (envtest), kube-controller-manager and kube-scheduler, containerd
// with runc, and a kubelet, all children of the test in the node
// namespace Isolate made.
//
// The kubelet and containerd share a mount namespace of their own (held by
// mountNS), so what they mount — volumes, container root file systems, the
// pods' network namespaces, and bpffs at /sys/fs/bpf, which the agent's
// DaemonSet mounts from the host — vanishes with them instead of staying
// on the machine. Their cgroups live under cgroupRoot, which the test
// creates and removes.
type cluster struct {
	t          *testing.T
	tools      tools
	dir        string
	nodeIP     string
	env        *envtest.Environment
	c          client.Client
	kubeconfig string
	mountNS    *exec.Cmd
	sock       string // containerd's socket
	cgroupRoot string // kubelet's --cgroup-root, e.g. /palisade-e2e-1234
}

func startCluster(t *testing.T, tl tools) *cluster {
	c := &cluster{t: t, tools: tl, dir: t.TempDir(), cgroupRoot: fmt.Sprintf("/palisade-e2e-%d", os.Getpid())}
	var err error
	if c.nodeIP, err = uplinkIP(); err != nil {
		t.Fatal(err)
	}
	c.startControlPlane()
	c.startMountNamespace()
	c.createCgroupRoot()
	c.startContainerd()
	c.startKubelet()
	c.startControllers()
	return c
}

// uplinkIP is the node's address: the one on the uplink Isolate made.
func uplinkIP() (string, error) {
	ifc, err := net.InterfaceByName(netlab.UplinkName)
	if err != nil {
		return "", fmt.Errorf("the node's uplink: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no IPv4 address on %s", netlab.UplinkName)
}

// startControlPlane starts kube-apiserver on the node's address (pods
// reach it there) with the ServiceAccount admission plugin, which envtest
// turns off but pods' service account tokens need.
func (c *cluster) startControlPlane() {
	assets, err := testenv.AssetsDir()
	if err != nil {
		c.t.Fatalf("kube-apiserver and etcd not found (run `make envtest-bins`): %v", err)
	}
	certDir := filepath.Join(c.dir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(c.dir, "etcd")}
	api := &envtest.APIServer{CertDir: certDir}
	// Address and port together: envtest replaces an address given alone.
	ln, err := net.Listen("tcp", net.JoinHostPort(c.nodeIP, "0"))
	if err != nil {
		c.t.Fatal(err)
	}
	api.SecureServing.ListenAddr.Address = c.nodeIP
	api.SecureServing.ListenAddr.Port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	api.Configure().
		Disable("disable-admission-plugins").
		Set("advertise-address", c.nodeIP)
	env.ControlPlane.APIServer = api
	cfg, err := env.Start()
	if err != nil {
		env.Stop()
		c.t.Fatalf("start control plane: %v", err)
	}
	c.env = env
	c.t.Cleanup(func() { env.Stop() })
	// One admin identity (system:masters) for kubectl, the kubelet and
	// the controllers. A production node's kubelet would use
	// system:node:<name> under the Node authorizer; this test cluster
	// skips node authorization.
	user, err := env.AddUser(envtest.User{Name: "palisade-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), api.SecureServing.CA, 0o600); err != nil {
		c.t.Fatal(err)
	}
	s := testenv.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		c.t.Fatal(err)
	}
	if c.c, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
		c.t.Fatal(err)
	}
}

// apiPort is the API server's port, for in-cluster clients.
func (c *cluster) apiPort() string {
	return c.env.ControlPlane.APIServer.SecureServing.Port
}

// kubeletTunables are the sysctls kubelet sets at start unless
// protectKernelDefaults, with the values it wants. They are not
// namespaced: kubelet would write them for the whole machine, which a
// test must not, and with protectKernelDefaults it refuses to start when
// they differ. So the node's mount namespace shows kubelet each of them
// that differs as a file holding the wanted value, bound over its /proc/sys
// entry; the machine's values stay as they are.
var kubeletTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// startMountNamespace starts the process that holds the node's mount
// namespace, mounts bpffs at /sys/fs/bpf there, and binds kubelet's
// tunables (see kubeletTunables).
func (c *cluster) startMountNamespace() {
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the OS thread that started the process exits,
	// not the test: the Go runtime ends threads (one whose goroutine
	// locked it and returned), which once killed the holder mid-story
	// ("nsenter: cannot open /proc/N/ns/mnt"). Start it from a thread
	// that stays locked, and alive, until the test ends.
	started, done := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		<-done
	}()
	if err := <-started; err != nil {
		close(done)
		c.t.Fatalf("unshare: %v", err)
	}
	c.mountNS = cmd
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); close(done) })
	// unshare execs sleep once the namespace exists.
	c.wait("the node's mount namespace", time.Minute, func() error {
		self, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			return err
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
		if err != nil {
			return err
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if ns == self || strings.TrimSpace(string(comm)) != "sleep" {
			return fmt.Errorf("not yet in a mount namespace of its own")
		}
		return nil
	})
	// containerd's shims and runc keep sockets and state under
	// /run/containerd whatever its configuration says: a tmpfs there keeps
	// them off the machine.
	// Last, every mount of the namespace is made shared, as systemd does on
	// a node, so the agent's HostToContainer mount of /sys/fs/bpf is
	// allowed; the peer groups are new, so nothing propagates to the
	// machine's namespace.
	// The mount point is made on the machine's /run if missing, and
	// removed again (while empty) at the end.
	if _, err := os.Stat("/run/containerd"); errors.Is(err, os.ErrNotExist) {
		c.t.Cleanup(func() { os.Remove("/run/containerd") })
	}
	script := []string{"set -e", "mount -t bpf bpffs /sys/fs/bpf", "mkdir -p /run/containerd", "mount -t tmpfs tmpfs /run/containerd"}
	defer func() {
		if out, err := c.inNode("mount", "--make-rshared", "/").CombinedOutput(); err != nil {
			c.t.Fatalf("make the node's mounts shared: %v: %s", err, out)
		}
	}()
	tun := filepath.Join(c.dir, "tunables")
	if err := os.MkdirAll(tun, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, want := range kubeletTunables {
		b, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			c.t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) == want {
			continue
		}
		f := filepath.Join(tun, strings.ReplaceAll(name, "/", "."))
		if err := os.WriteFile(f, []byte(want+"\n"), 0o444); err != nil {
			c.t.Fatal(err)
		}
		script = append(script, fmt.Sprintf("mount --bind -o ro %s /proc/sys/%s", f, name))
		c.t.Logf("node mount namespace: kubelet sees %s = %s (the machine's: %s)", name, want, strings.TrimSpace(string(b)))
	}
	if out, err := c.inNode("sh", "-c", strings.Join(script, "\n")).CombinedOutput(); err != nil {
		c.t.Fatalf("set up the node's mount namespace: %v: %s", err, out)
	}
}

// inNode is a command in the node's mount namespace.
func (c *cluster) inNode(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--target", strconv.Itoa(c.mountNS.Process.Pid), "--mount", "--"}, args...)...)
}

// cgroupMounts are the cgroup hierarchies of this machine (v1 controllers
// and the unified cgroup2).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				dirs = append(dirs, fields[4])
			}
		}
	}
	return dirs, sc.Err()
}

// createCgroupRoot creates the kubelet's cgroup root in every hierarchy;
// the cleanup kills what is left in it (processes of this test's pods
// only) and removes it.
func (c *cluster) createCgroupRoot() {
	mounts, err := cgroupMounts()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range mounts {
		if err := os.Mkdir(filepath.Join(m, c.cgroupRoot), 0o755); err != nil {
			c.t.Fatalf("cgroup root: %v", err)
		}
	}
	c.t.Cleanup(func() {
		for _, m := range mounts {
			if err := removeCgroupTree(filepath.Join(m, c.cgroupRoot)); err != nil {
				c.t.Errorf("remove cgroup %s: %v", filepath.Join(m, c.cgroupRoot), err)
			}
		}
	})
}

// removeCgroupTree kills the processes in the cgroup tree at dir and
// removes it, children first.
func removeCgroupTree(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	deadline := time.Now().Add(30 * time.Second)
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			b, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// start runs a program of the node (in its mount namespace) with its
// output in dir/<name>.log.
func (c *cluster) start(name string, env []string, args ...string) *devenv.Proc {
	nsArgs := append([]string{"--target", strconv.Itoa(c.mountNS.Process.Pid), "--mount", "--", "env"}, env...)
	p, err := devenv.Start(name, "nsenter", c.kubeconfig, filepath.Join(c.dir, name+".log"), append(nsArgs, args...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		p.Stop()
		c.dumpLog(p.Log)
	})
	return p
}

func (c *cluster) dumpLog(path string) {
	if !c.t.Failed() {
		return
	}
	b, _ := os.ReadFile(path)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	c.t.Logf("--- %s (tail) ---\n%s", filepath.Base(path), b)
}

// containerdConfig is containerd's configuration: its state in the test's
// directory, the CRI plugin with runc (cgroupfs, as kubelet), the CNI
// plugins from Debian, the locally built pause image as the sandbox, and
// the native snapshotter (no overlay mounts to leak). restrict_oom_score_adj:
// root on this machine lacks CAP_SYS_RESOURCE, so runc cannot lower a
// process's oom_score_adj (kubelet asks -998 for every pod sandbox:
// "failed to update /proc/self/oom_score_adj: Permission denied"); with
// it, containerd clamps each request to its own score instead.
const containerdConfig = `version = 3
root = "{{dir}}/root"
state = "{{dir}}/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "{{dir}}/containerd.sock"

[ttrpc]
  address = "{{dir}}/containerd.sock.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "native"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{{pause}}"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{{runc}}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{{dir}}/cni"
`

// cniConfig: ptp, a veth per pod with a host route to it, which is what
// the agent attaches to (internal/agent/links.go follows the route to a
// pod's address to its host-side veth; the bridge plugin's routes lead to
// the bridge instead).
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "palisade-e2e",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "{{dir}}/ipam",
        "ranges": [[{"subnet": "{{subnet}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`

func (c *cluster) image(name string) string {
	return "ghcr.io/palisade-dev/" + name + ":" + c.tools.imageTag
}

func (c *cluster) startContainerd() {
	dir := filepath.Join(c.dir, "containerd")
	runc, _ := exec.LookPath("runc")
	for _, d := range []string{dir, filepath.Join(dir, "cni")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	r := strings.NewReplacer("{{dir}}", dir, "{{pause}}", c.image("pause"), "{{runc}}", runc, "{{subnet}}", podSubnet)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(r.Replace(containerdConfig)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cni", "10-palisade.conflist"), []byte(r.Replace(cniConfig)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.sock = filepath.Join(dir, "containerd.sock")
	// The shim is found on PATH; it outlives containerd by design, so the
	// cleanup kills the shims of this containerd (by its socket) after it.
	c.t.Cleanup(c.killShims)
	c.start("containerd", []string{"PATH=" + c.tools.containerd + ":" + os.Getenv("PATH")},
		filepath.Join(c.tools.containerd, "containerd"), "--config", filepath.Join(dir, "config.toml"))
	ctr := filepath.Join(c.tools.containerd, "ctr")
	c.wait("containerd", time.Minute, func() error {
		out, err := exec.Command(ctr, "--address", c.sock, "version").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	// Nothing can be pulled: the images built for the story are imported,
	// unpacked for the CRI's snapshotter, and named by digest as well as
	// by tag, because the kustomization hack/images wrote pins them by
	// digest (ctr's own --digests names them "import-<date>@sha256:...").
	ctrArgs := []string{"--address", c.sock, "--namespace", "k8s.io", "images"}
	out, err := exec.Command(ctr, append(ctrArgs, "import", "--local", "--snapshotter", "native",
		"--platform", "linux/"+runtime.GOARCH, c.tools.images)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ctr images import: %v: %s", err, out)
	}
	ls, err := exec.Command(ctr, append(ctrArgs, "ls", "--quiet")...).Output()
	if err != nil {
		c.t.Fatalf("ctr images ls: %v", err)
	}
	for _, ref := range strings.Fields(string(ls)) {
		if !strings.HasSuffix(ref, ":"+c.tools.imageTag) {
			continue
		}
		info, err := exec.Command(ctr, append(ctrArgs, "ls", "name=="+ref)...).Output()
		if err != nil {
			c.t.Fatalf("ctr images ls %s: %v", ref, err)
		}
		var digest string
		for _, f := range strings.Fields(string(info)) {
			if strings.HasPrefix(f, "sha256:") {
				digest = f
				break
			}
		}
		if digest == "" {
			c.t.Fatalf("no digest for %s in %q", ref, info)
		}
		byDigest := strings.TrimSuffix(ref, ":"+c.tools.imageTag) + "@" + digest
		if out, err := exec.Command(ctr, append(ctrArgs, "tag", "--force", ref, byDigest)...).CombinedOutput(); err != nil {
			c.t.Fatalf("ctr images tag %s %s: %v: %s", ref, byDigest, err, out)
		}
	}
	out, _ = exec.Command(ctr, append(ctrArgs, "ls")...).CombinedOutput()
	c.t.Logf("images in containerd:\n%s", out)
}

// killShims kills the runc shims this containerd started (they hold the
// socket's path in their arguments) and the containers under cgroupRoot.
func (c *cluster) killShims() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if strings.HasSuffix(args[0], "containerd-shim-runc-v2") && strings.Contains(string(b), c.sock) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// kubeletConfig: cgroup v1 allowed (this machine's hybrid layout),
// cgroupfs like runc here, images never garbage-collected (they cannot be
// pulled again), and no eviction on the shared machine's disk.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {{cgroupRoot}}
containerRuntimeEndpoint: unix://{{sock}}
failSwapOn: false
protectKernelDefaults: true
address: {{nodeIP}}
readOnlyPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: {{dir}}/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
resolvConf: /etc/resolv.conf
`

func (c *cluster) startKubelet() {
	dir := filepath.Join(c.dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(dir, "pod-logs"), 0o755); err != nil {
		c.t.Fatal(err)
	}
	r := strings.NewReplacer("{{cgroupRoot}}", c.cgroupRoot, "{{sock}}", c.sock, "{{nodeIP}}", c.nodeIP, "{{dir}}", dir)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(r.Replace(kubeletConfig)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.start("kubelet", nil, c.tools.kubelet, "--config", cfg, "--kubeconfig", c.kubeconfig,
		"--root-dir", filepath.Join(dir, "root"), "--hostname-override", nodeName, "--node-ip", c.nodeIP, "-v=2")
	c.wait("the node Ready", 3*time.Minute, func() error {
		n := &corev1.Node{}
		if err := c.c.Get(context.Background(), client.ObjectKey{Name: nodeName}, n); err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status != corev1.ConditionTrue {
					return fmt.Errorf("Ready=%s: %s", cond.Status, cond.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no Ready condition yet")
	})
}

// startControllers starts kube-controller-manager (Deployments,
// DaemonSets, service accounts, the kube-root-ca.crt ConfigMap pods'
// tokens need) and kube-scheduler.
func (c *cluster) startControllers() {
	certDir := filepath.Join(c.dir, "apiserver")
	c.start("kube-controller-manager", nil, c.tools.controllerManager,
		"--kubeconfig", c.kubeconfig, "--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1",
		"--root-ca-file", filepath.Join(certDir, "ca.crt"),
		"--service-account-private-key-file", filepath.Join(certDir, "sa-signer.key"),
		"--use-service-account-credentials=false")
	c.start("kube-scheduler", nil, c.tools.scheduler,
		"--kubeconfig", c.kubeconfig, "--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1")
	c.wait("the default service account", 2*time.Minute, func() error {
		return c.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
	})
}

func (c *cluster) wait(what string, timeout time.Duration, f func() error) {
	c.t.Helper()
	if err := devenv.WaitFor(context.Background(), timeout, what, f); err != nil {
		c.t.Fatal(err)
	}
}

// kubectl runs kubectl against the cluster.
func (c *cluster) kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectlErr(args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) kubectlErr(args ...string) (string, error) {
	out, err := exec.Command(c.tools.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// gitServer serves bare repositories under root on the node's address
// (the manager pod reaches it there) with git's own http-backend.
func (c *cluster) gitServer() *devenv.GitServer {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		c.t.Fatal(err)
	}
	root := filepath.Join(c.dir, "git")
	if err := os.MkdirAll(root, 0o755); err != nil {
		c.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.nodeIP, "0"))
	if err != nil {
		c.t.Fatal(err)
	}
	srv := &http.Server{Handler: &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	c.t.Cleanup(func() { srv.Close() })
	return &devenv.GitServer{Root: root, URL: "http://" + ln.Addr().String()}
}
