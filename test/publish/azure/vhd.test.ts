import { execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readSync, rmSync, statSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nonZeroRuns } from "../../../src/publish/azure/pages";
import { chsGeometry, vhdDataSize, vhdFooter, vhdUniqueId } from "../../../src/publish/azure/vhd";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** The checksum as the specification defines it, computed here byte by byte without the code's helper. */
function specChecksum(footer: Buffer): number {
  const copy = Buffer.from(footer);
  copy.fill(0, 64, 68);
  let sum = 0;
  for (const byte of copy) sum += byte;
  return ~sum >>> 0;
}

describe("the fixed VHD footer, field by field against the specification", () => {
  const imageId = "sha256:" + "ab".repeat(32);
  const size = 40 * MiB;
  const footer = vhdFooter(size, imageId);

  test("layout: cookie, features, version, data offset, timestamp, creator", () => {
    expect(footer.length).toBe(512);
    expect(footer.toString("ascii", 0, 8)).toBe("conectix");
    expect(footer.readUInt32BE(8)).toBe(2); // the reserved feature bit is always set
    expect(footer.readUInt32BE(12)).toBe(0x00010000);
    expect(footer.readBigUInt64BE(16)).toBe(0xffffffffffffffffn); // fixed disks have no data offset
    expect(footer.readUInt32BE(24)).toBe(0); // 1980 (the bake's epoch) clamps to the VHD epoch, 2000
    expect(footer.toString("ascii", 28, 32)).toBe("kbak");
    expect(footer.readUInt32BE(32)).toBe(0x00010000);
    expect(footer.toString("ascii", 36, 40)).toBe("Wi2k");
  });

  test("sizes, geometry, disk type, unique id, saved state, reserved bytes", () => {
    expect(footer.readBigUInt64BE(40)).toBe(BigInt(size));
    expect(footer.readBigUInt64BE(48)).toBe(BigInt(size));
    // 40 MiB = 81920 sectors: 17 sectors per track gives 4818 cylinder×heads, heads = ceil(4818/1024) = 5
    expect([footer.readUInt16BE(56), footer.readUInt8(58), footer.readUInt8(59)]).toEqual([963, 5, 17]);
    expect(footer.readUInt32BE(60)).toBe(2); // fixed
    const uuid = footer.subarray(68, 84);
    expect(uuid.equals(vhdUniqueId(imageId))).toBe(true);
    expect(uuid[6]! >> 4).toBe(4);
    expect(uuid[8]! >> 6).toBe(2);
    expect(footer.readUInt8(84)).toBe(0);
    expect(footer.subarray(85).every((b) => b === 0)).toBe(true);
  });

  test("the checksum verifies, and changes when any field does", () => {
    expect(footer.readUInt32BE(64)).toBe(specChecksum(footer));
    const other = vhdFooter(size + MiB, imageId);
    expect(other.readUInt32BE(64)).toBe(specChecksum(other));
    expect(other.readUInt32BE(64)).not.toBe(footer.readUInt32BE(64));
  });

  test("reproducible: the same image id gives the same bytes; another id another unique id", () => {
    expect(vhdFooter(size, imageId).equals(footer)).toBe(true);
    const another = vhdFooter(size, "sha256:" + "cd".repeat(32));
    expect(another.subarray(68, 84).equals(footer.subarray(68, 84))).toBe(false);
    expect(another.subarray(0, 64).equals(footer.subarray(0, 64))).toBe(true);
  });

  test("geometry for a few sizes, worked out by hand from the specification's algorithm", () => {
    expect(chsGeometry(1 * MiB)).toEqual({ cylinders: 30, heads: 4, sectorsPerTrack: 17 });
    expect(chsGeometry(64 * MiB)).toEqual({ cylinders: 963, heads: 8, sectorsPerTrack: 17 });
    expect(chsGeometry(3 * GiB)).toEqual({ cylinders: 6241, heads: 16, sectorsPerTrack: 63 });
    expect(chsGeometry(40 * GiB)).toEqual({ cylinders: 20560, heads: 16, sectorsPerTrack: 255 });
    // Beyond 65535×16×255 sectors (about 127 GiB) the geometry stays at its maximum.
    expect(chsGeometry(1024 * GiB)).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  });

  test("geometry agrees with qemu-img's VHD writer (which rounds cylinders up, the specification down)", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubebake-vhd-"));
    try {
      for (const size of [1 * MiB, 64 * MiB, 3 * GiB, 40 * GiB]) {
        const file = join(dir, `${size}.vhd`);
        execFileSync("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=fixed", file, String(size)]);
        const tail = Buffer.alloc(512);
        const fd = openSync(file, "r");
        readSync(fd, tail, 0, 512, statSync(file).size - 512);
        closeSync(fd);
        rmSync(file);
        const ours = chsGeometry(size);
        expect(tail.toString("ascii", 0, 8)).toBe("conectix");
        expect({ heads: tail.readUInt8(58), sectorsPerTrack: tail.readUInt8(59) }).toEqual({
          heads: ours.heads,
          sectorsPerTrack: ours.sectorsPerTrack,
        });
        expect(tail.readUInt16BE(56) - ours.cylinders).toBe(1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the data part is padded to a whole MiB, and a footer refuses anything else", () => {
    expect(vhdDataSize(1)).toBe(MiB);
    expect(vhdDataSize(MiB)).toBe(MiB);
    expect(vhdDataSize(MiB + 512)).toBe(2 * MiB);
    expect(vhdDataSize(3 * GiB - 4096)).toBe(3 * GiB);
    expect(() => vhdFooter(MiB + 512, imageId)).toThrow("whole MiB");
  });
});

describe("non-zero sectors", () => {
  test("runs are sector-aligned and cover exactly the sectors holding a non-zero byte", () => {
    const chunk = Buffer.alloc(16 * 512);
    chunk[0] = 1; // sector 0
    chunk[3 * 512 + 511] = 1; // last byte of sector 3
    chunk[4 * 512] = 1; // sector 4, adjacent: one run 3..5
    chunk[15 * 512 + 7] = 9; // the last sector
    expect(nonZeroRuns(chunk)).toEqual([
      [0, 512],
      [3 * 512, 5 * 512],
      [15 * 512, 16 * 512],
    ]);
    expect(nonZeroRuns(Buffer.alloc(4096))).toEqual([]);
  });
});
