import type { Arch, Component, ImageSpec } from "../spec/schema";
import { invalidInput } from "../errors";

/** One thing to fetch and verify, and which of its files go where in the image. */
export interface ArtifactPlan {
  component: string;
  version: string;
  arch: Arch;
  source: UpstreamFetch | DebianFetch;
  install: { from: string; to: string; mode: number }[];
}

export interface UpstreamFetch {
  kind: "upstream";
  format: "binary" | "tar.gz";
  url: string;
  sha256: string;
}

export interface DebianFetch {
  kind: "debian";
  package: string;
  version: string;
  /** Pinned digest of the .deb, when the spec has one. */
  sha256?: string;
}

/** Pure: which artifacts a bake of this spec for this architecture needs. */
export function planArtifacts(spec: ImageSpec, specFile: string, arch: Arch): ArtifactPlan[] {
  return spec.components.map((c, i) => ({
    component: c.name,
    version: c.version,
    arch,
    source: fetchFor(c, i, specFile, arch),
    install: installFor(c, arch),
  }));
}

function fetchFor(c: Component, index: number, specFile: string, arch: Arch): UpstreamFetch | DebianFetch {
  if (c.source.upstream) {
    const artifact = c.source.upstream.artifacts[arch];
    if (!artifact) {
      const have = Object.keys(c.source.upstream.artifacts).join(", ");
      throw invalidInput(
        `${specFile}: components[${index}].source.upstream.artifacts.${arch}: missing; ${c.name} has artifacts only for ${have}`,
      );
    }
    return { kind: "upstream", format: c.source.upstream.format, url: artifact.url, sha256: artifact.sha256 };
  }
  const debian = c.source.debian!;
  return { kind: "debian", package: debian.package, version: c.version, sha256: debian.sha256?.[arch] };
}

function installFor(c: Component, arch: Arch) {
  const entries = c.install ?? [{ from: c.name, to: `/usr/local/bin/${c.name}`, mode: "0755" }];
  return entries.map((e) => ({
    from: e.from.replaceAll("{arch}", arch).replaceAll("{version}", c.version),
    to: e.to,
    mode: parseInt(e.mode, 8),
  }));
}
