/**
 * The user data of every cloud's nodes: cloud-init writes the role file `/etc/sysconfig/kubernetes-<role>`
 * (the units' ConditionPathExists decides what starts) and nothing else. Nothing secret goes in it.
 */
import { stringify } from "yaml";
import type { Role } from "../discover/names";

export function roleFileCloudConfig(role: Role, lines: string[]): string {
  return (
    "#cloud-config\n" +
    stringify({
      write_files: [
        {
          path: `/etc/sysconfig/kubernetes-${role}`,
          owner: "root:root",
          permissions: "0644",
          content: lines.join("\n") + "\n",
        },
      ],
    })
  );
}
