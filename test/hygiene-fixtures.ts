import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** Root filesystems shared by the in-process hygiene tests and the `kubebake image check` CLI tests. */

/** Writes a root filesystem folder at `root` with these files (and an etc/). */
export function rootWith(root: string, files: Record<string, string>): string {
  mkdirSync(join(root, "etc"), { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

/** One of each violation (13 in all), and files a clean image may have next to them. */
export const dirty = {
  "etc/ssh/ssh_host_ed25519_key": "key",
  "etc/ssh/ssh_host_ed25519_key.pub": "pub",
  "etc/ssh/sshd_config": "PermitRootLogin no\n",
  "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
  "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
  "var/lib/cloud/instance/boot-finished": "done",
  "var/lib/apt/lists/deb.example_dists_bookworm_InRelease": "x",
  "var/lib/apt/lists/lock": "",
  "var/cache/apt/pkgcache.bin": "x",
  "var/cache/apt/archives/curl_8_amd64.deb": "x",
  "var/log/syslog": "Nov 23 boot\n",
  "var/log/empty.log": "",
  "root/.bash_history": "ls\n",
  "home/admin/.bash_history": "sudo -i\n",
  "etc/kubernetes/pki/ca.key":
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
  "etc/kubebake/secrets/bootstrap-token": "abcdef.0123456789abcdef\n",
  "usr/share/doc/example/key.pem": "-----BEGIN PRIVATE KEY-----\n", // a lone BEGIN line is no key
};

/** A clean tree: an empty machine-id, the D-Bus one a link to it, an empty log folder. */
export function cleanRoot(root: string): string {
  rootWith(root, { "etc/machine-id": "", "etc/hostname": "localhost\n", "var/log/.keep": "" });
  mkdirSync(join(root, "var/lib/dbus"), { recursive: true });
  symlinkSync("/etc/machine-id", join(root, "var/lib/dbus/machine-id"));
  return root;
}

const unit = (command: string, pre = "") =>
  `[Unit]\nDescription=x\n[Service]\n${pre}ExecStart=${command} \\\n  --flag=1\n[Install]\nWantedBy=multi-user.target\n`;

/** Units of which two would fail at boot: a misspelt command, a missing ExecStartPre= with a '+' prefix. */
export function unitsRoot(root: string): string {
  rootWith(root, {
    "etc/systemd/system/kube-apiserver.service": unit("/usr/local/bin/kube-apiservr"),
    "etc/systemd/system/kubelet.service": unit(
      "/usr/local/bin/kubelet",
      "ExecStartPre=-/sbin/modprobe overlay\n",
    ),
    "etc/systemd/system/node-config.service": unit(
      "/usr/lib/kubebake/node-config",
      "ExecStartPre=+/usr/lib/kubebake/wait\n",
    ),
    "usr/lib/systemd/system/ssh.service": unit("/usr/sbin/sshd"),
    "usr/lib/systemd/system/getty.service": unit("-/sbin/agetty"),
    "usr/lib/systemd/system/bare.service": unit("ls"),
    "usr/lib/systemd/system/rc-local.service": unit(
      "/etc/rc.local start",
      "ConditionFileIsExecutable=/etc/rc.local\n",
    ),
    "usr/local/bin/kubelet": "#!/bin/sh\n",
    "usr/lib/kubebake/node-config": "#!/bin/sh\n",
    "usr/bin/ls": "",
  });
  // merged /usr: /usr/sbin/sshd found through the sbin link, /lib is /usr/lib (checked once)
  mkdirSync(join(root, "usr/sbin"), { recursive: true });
  writeFileSync(join(root, "usr/sbin/sshd.real"), "");
  symlinkSync("/usr/sbin/sshd.real", join(root, "usr/sbin/sshd"));
  symlinkSync("usr/lib", join(root, "lib"));
  return root;
}

export const unitsExpected = [
  {
    path: "/etc/systemd/system/kube-apiserver.service",
    rule: "the command /usr/local/bin/kube-apiservr of this unit is not in the image",
  },
  {
    path: "/etc/systemd/system/node-config.service",
    rule: "the command /usr/lib/kubebake/wait of this unit is not in the image",
  },
];
