import { isAbsolute, join, resolve } from "node:path";

/**
 * A mirror holds upstream files under <mirror>/<host>/<path>, so one mirror serves every upstream
 * (dl.k8s.io, github.com, ...) and can be filled with a plain recursive copy. Debian packages live
 * under <mirror>/debian/<package>_<version>_<arch>.deb, named as apt names downloaded files.
 */
export type Mirror = { kind: "dir"; dir: string } | { kind: "url"; base: string };

export function parseMirror(value: string): Mirror {
  if (/^https?:\/\//.test(value)) return { kind: "url", base: value.replace(/\/+$/, "") };
  if (value.startsWith("file://")) return { kind: "dir", dir: new URL(value).pathname };
  return { kind: "dir", dir: isAbsolute(value) ? value : resolve(value) };
}

/** Where a mirror keeps an upstream URL: a local path or a URL. */
export function mirrorLocation(mirror: Mirror, upstreamUrl: string): string {
  const url = new URL(upstreamUrl);
  const relative = `${url.host}${decodeURIComponent(url.pathname)}`;
  return mirror.kind === "dir"
    ? join(mirror.dir, ...relative.split("/"))
    : `${mirror.base}/${url.host}${url.pathname}`;
}

/** apt writes an epoch's ':' as %3a in downloaded file names. */
export function debFileName(pkg: string, version: string, arch: string): string {
  return `${pkg}_${version.replace(/:/g, "%3a")}_${arch}.deb`;
}

export function mirrorDebianLocation(mirror: Mirror, pkg: string, version: string, arch: string): string {
  const file = debFileName(pkg, version, arch);
  return mirror.kind === "dir"
    ? join(mirror.dir, "debian", file)
    : `${mirror.base}/debian/${encodeURIComponent(file)}`;
}
