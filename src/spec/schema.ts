import { z } from "zod";
import { closest } from "../util/did-you-mean";
import { parsePinnedImage } from "../images/reference";
import { KNOWN_COMPONENTS } from "./components";

/** The architectures kubebake bakes for (Debian and Kubernetes both call them this). */
export const ARCHES = ["amd64", "arm64"] as const;
export type Arch = (typeof ARCHES)[number];
export const ROLES = ["masters", "minions"] as const;
export type Role = (typeof ROLES)[number];

const sha256 = z
  .string({ error: "expected a SHA-256 digest (64 lowercase hex characters)" })
  .regex(/^[0-9a-f]{64}$/, { error: "expected a SHA-256 digest (64 lowercase hex characters)" });

const httpsUrl = z
  .string({ error: "expected a URL" })
  .refine((value) => /^https?:\/\/[^/\s]+\/\S+$/.test(value), {
    error:
      "expected an http(s) URL with a path, like https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubelet",
  });

const absolutePath = z
  .string({ error: "expected an absolute path in the image" })
  .refine((p) => p.startsWith("/") && !p.split("/").includes("..") && !p.endsWith("/"), {
    error: "expected an absolute file path in the image, without '..' or a trailing '/'",
  });

const memberPath = z
  .string({ error: "expected a path inside the archive" })
  .min(1, { error: "expected a path inside the archive" })
  .refine((p) => !p.startsWith("/") && !p.split("/").includes(".."), {
    error: "expected a relative path inside the archive, without '..'",
  });

const name = z
  .string({ error: "expected a name" })
  .regex(/^[a-z0-9][a-z0-9-]*$/, { error: "expected a lowercase name of letters, digits and '-'" });

const debianPackageName = z
  .string({ error: "expected a Debian package name" })
  .regex(/^[a-z0-9][a-z0-9+.-]+$/, { error: "expected a Debian package name, like etcd-server" });

/** One downloadable file for one architecture. */
const artifact = z.strictObject({ url: httpsUrl, sha256 });

/** How a file from the fetched artifact lands in the image. */
const install = z.strictObject({
  from: memberPath,
  to: absolutePath,
  mode: z
    .string({ error: 'expected an octal mode like "0755"' })
    .regex(/^0[0-7]{3}$/, { error: 'expected an octal mode like "0755"' })
    .default("0755"),
});

const perArch = <T extends z.ZodType>(item: T) =>
  z
    .partialRecord(z.enum(ARCHES, { error: `expected an architecture: ${ARCHES.join(" or ")}` }), item)
    .refine((value) => Object.keys(value).length > 0, { error: "expected at least one architecture" });

const upstreamSource = z.strictObject({
  format: z.enum(["binary", "tar.gz"], { error: 'expected "binary" or "tar.gz"' }),
  artifacts: perArch(artifact),
});

const debianSource = z.strictObject({
  package: debianPackageName,
  /** Optional pins of the .deb files; apt already checks the signed archive index. */
  sha256: perArch(sha256).optional(),
});

const component = z
  .strictObject({
    name,
    version: z.string({ error: "expected a version string" }).regex(/^[A-Za-z0-9.+~:-]+$/, {
      error: "expected a version like v1.36.3 or a Debian version like 3.4.23-4+b4",
    }),
    roles: z
      .array(z.enum(ROLES, { error: `expected a role: ${ROLES.join(" or ")}` }), {
        error: "expected a list of roles",
      })
      .min(1, { error: "expected at least one role" }),
    source: z
      .strictObject({ upstream: upstreamSource.optional(), debian: debianSource.optional() })
      .refine((s) => (s.upstream ? 1 : 0) + (s.debian ? 1 : 0) === 1, {
        error: "expected exactly one of upstream or debian",
      }),
    install: z.array(install, { error: "expected a list of {from, to} entries" }).optional(),
  })
  .superRefine((c, ctx) => {
    const archived = c.source.debian !== undefined || c.source.upstream?.format === "tar.gz";
    if (archived && (!c.install || c.install.length === 0)) {
      ctx.addIssue({
        code: "custom",
        path: ["install"],
        message: "expected the files to take from the archive (install: [{from, to}]) for an archive source",
      });
    }
  });

const cidr = z
  .string({ error: "expected an IPv4 CIDR like 10.32.0.0/16" })
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, {
    error: "expected an IPv4 CIDR like 10.32.0.0/16",
    abort: true,
  })
  .refine(
    (v) =>
      v
        .split(/[./]/)
        .slice(0, 4)
        .every((o) => Number(o) <= 255) && Number(v.split("/")[1]) <= 32,
    {
      error: "expected an IPv4 CIDR like 10.32.0.0/16",
    },
  );

const ipv4 = z
  .string({ error: "expected an IPv4 address" })
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, { error: "expected an IPv4 address", abort: true })
  .refine((v) => v.split(".").every((o) => Number(o) <= 255), { error: "expected an IPv4 address" });

const SECONDS = /^[1-9][0-9]{0,3}s$/;
const seconds = z
  .string({ error: 'expected a duration in whole seconds, like "15s"' })
  .regex(SECONDS, { error: 'expected a duration in whole seconds, like "15s"' });
const inSeconds = (d: string) => Number(d.slice(0, -1));

/** client-go refuses a renew deadline not under the lease, or not above 1.2 retry periods (its jitter). */
const leaderElection = z
  .strictObject({ leaseDuration: seconds, renewDeadline: seconds, retryPeriod: seconds })
  .superRefine((le, ctx) => {
    // A malformed duration has its own message; the comparisons need three well-formed ones.
    if (![le.leaseDuration, le.renewDeadline, le.retryPeriod].every((d) => SECONDS.test(d))) return;
    if (inSeconds(le.renewDeadline) >= inSeconds(le.leaseDuration))
      ctx.addIssue({
        code: "custom",
        path: ["renewDeadline"],
        message: `expected less than leaseDuration (${le.leaseDuration}), got ${le.renewDeadline}`,
      });
    if (inSeconds(le.renewDeadline) <= 1.2 * inSeconds(le.retryPeriod))
      ctx.addIssue({
        code: "custom",
        path: ["renewDeadline"],
        message: `expected more than 1.2 times retryPeriod (${le.retryPeriod}), got ${le.renewDeadline}`,
      });
  });

const TAGGED = /^[a-z0-9.-]+(:[0-9]+)?\/[a-z0-9._/-]+(:[A-Za-z0-9._-]+)?$/;

/** An add-on image pinned by digest: a tag alone can be moved to other bytes after the image is tested. */
const pinnedImage = z
  .string({
    error:
      "expected a container image reference pinned by digest, like registry.k8s.io/pause:3.10.2@sha256:<64 hex>",
  })
  .refine((v) => parsePinnedImage(v) !== undefined, {
    error: (issue) =>
      typeof issue.input === "string" && TAGGED.test(issue.input)
        ? `expected the image pinned by digest, like ${issue.input}@sha256:<64 hex>; a tag alone can change under you`
        : "expected a container image reference with a registry, pinned by digest, like registry.k8s.io/pause:3.10.2@sha256:<64 hex>",
  });

export const imageSpecSchema = z
  .strictObject({
    apiVersion: z.literal("kubebake.io/v1alpha1", { error: 'expected "kubebake.io/v1alpha1"' }),
    kind: z.literal("ImageSpec", { error: 'expected "ImageSpec"' }),
    name,
    base: z.strictObject({
      distribution: z.literal("debian", { error: 'expected "debian"' }),
      suite: z.literal("bookworm", { error: 'expected "bookworm" (the one suite kubebake supports now)' }),
      packages: z.array(debianPackageName, { error: "expected a list of Debian package names" }),
      archPackages: z.partialRecord(z.enum(ARCHES), z.array(debianPackageName)).default({}),
    }),
    /** Cluster-wide defaults baked into the units and config files. */
    cluster: z.strictObject({
      serviceCIDR: cidr,
      podCIDR: cidr,
      clusterDNS: ipv4,
      clusterDomain: z
        .string({ error: "expected a DNS domain like cluster.local" })
        .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
          error: "expected a DNS domain like cluster.local",
        }),
      discoveryDomain: z
        .string({ error: "expected a DNS zone like k8s" })
        .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
          error: "expected a DNS zone like k8s",
        })
        .default("k8s"),
      /**
       * How the controller manager and the scheduler keep their leader lease. Upstream's timings by default;
       * slow or emulated machines, whose API server may take seconds to answer, raise them rather than have
       * both restart whenever one renewal is late.
       */
      leaderElection: leaderElection.default({
        leaseDuration: "15s",
        renewDeadline: "10s",
        retryPeriod: "2s",
      }),
    }),
    /** Container images of the add-ons the masters apply and of the sandbox. */
    addons: z.strictObject({
      flannel: pinnedImage,
      flannelCNIPlugin: pinnedImage,
      coredns: pinnedImage,
      pause: pinnedImage,
      /** More images to preload, for workloads that must run without a registry. */
      extra: z.array(pinnedImage, { error: "expected a list of image references" }).default([]),
    }),
    components: z.array(component, { error: "expected a list of components" }).min(1, {
      error: "expected at least one component",
    }),
  })
  .superRefine((spec, ctx) => {
    const dnsProblem = clusterDnsProblem(spec.cluster.clusterDNS, spec.cluster.serviceCIDR);
    if (dnsProblem) ctx.addIssue({ code: "custom", path: ["cluster", "clusterDNS"], message: dnsProblem });
    const seenNames = new Map<string, number>();
    const seenTargets = new Map<string, string>();
    spec.components.forEach((c, i) => {
      if (!(KNOWN_COMPONENTS as readonly string[]).includes(c.name)) {
        const guess = closest(c.name, KNOWN_COMPONENTS);
        ctx.addIssue({
          code: "custom",
          path: ["components", i, "name"],
          message: `unknown component ${JSON.stringify(c.name)}; ${
            guess ? `did you mean ${JSON.stringify(guess)}?` : `kubebake knows ${KNOWN_COMPONENTS.join(", ")}`
          }`,
        });
      }
      if (seenNames.has(c.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["components", i, "name"],
          message: `expected a unique name; "${c.name}" is also components[${seenNames.get(c.name)}]`,
        });
      }
      seenNames.set(c.name, i);
      const targets = c.install?.map((x) => x.to) ?? [`/usr/local/bin/${c.name}`];
      targets.forEach((to, j) => {
        const owner = seenTargets.get(to);
        if (owner !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["components", i, "install", j, "to"],
            message: `expected a path no other component installs; ${to} is also installed by ${owner}`,
          });
        }
        seenTargets.set(to, c.name);
      });
    });
  });

const ipv4Number = (ip: string) => ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);

/** CoreDNS's service address must be one the API server can give out: inside the service CIDR. */
function clusterDnsProblem(dns: string, serviceCIDR: string): string | undefined {
  const [base, bits] = serviceCIDR.split("/");
  const size = 2 ** (32 - Number(bits));
  const first = Math.floor(ipv4Number(base!) / size) * size;
  const offset = ipv4Number(dns) - first;
  if (offset < 0 || offset >= size) {
    return `expected an address inside cluster.serviceCIDR ${serviceCIDR}, got ${dns}`;
  }
  if (offset <= 1 || offset === size - 1) {
    return `expected an address inside cluster.serviceCIDR ${serviceCIDR} other than its first two and its last (network, the kubernetes service, broadcast), got ${dns}`;
  }
  return undefined;
}

export type ImageSpec = z.output<typeof imageSpecSchema>;
export type Component = ImageSpec["components"][number];
export type InstallEntry = NonNullable<Component["install"]>[number];
