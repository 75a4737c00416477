/**
 * A fixed VHD is the raw disk followed by a 512-byte footer (Microsoft's "Virtual Hard Disk Image Format
 * Specification", version 1.0). Azure takes only fixed VHDs whose virtual size is a whole number of MiB,
 * so the raw disk is padded with zeros up to the next MiB before the footer.
 * Everything here is pure: the same image id and size always give the same footer, byte for byte.
 */
import { createHash } from "node:crypto";
import { TREE_EPOCH } from "../../bake/tree";

export const SECTOR = 512;
export const MiB = 1024 * 1024;
export const FOOTER_SIZE = 512;

/** VHD timestamps count seconds from 2000-01-01T00:00:00Z. */
const VHD_EPOCH = Date.UTC(2000, 0, 1) / 1000;
/** The bake's fixed timestamp (1980) precedes the VHD epoch, so it clamps to 0: still fixed, still valid. */
export const VHD_TIMESTAMP = Math.max(0, TREE_EPOCH - VHD_EPOCH);

const FIXED_DISK = 2;
const NO_DATA_OFFSET = 0xffffffffffffffffn;

export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/** The size of the VHD's data part: the raw disk padded to a whole MiB (Azure refuses anything else). */
export const vhdDataSize = (rawSize: number): number => Math.max(1, Math.ceil(rawSize / MiB)) * MiB;

/**
 * CHS geometry from the specification's appendix: the smallest sectors-per-track (17, 31, 63, then 255)
 * whose cylinder count fits; cylinders round down, and disks beyond 65535×16×255 sectors clamp to that.
 */
export function chsGeometry(size: number): Geometry {
  const totalSectors = Math.min(Math.floor(size / SECTOR), 65535 * 16 * 255);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** A version-4-shaped UUID from the image id, so republishing the same image gives the same footer. */
export function vhdUniqueId(imageId: string): Buffer {
  const id = createHash("sha256").update(`kubebake/vhd/${imageId}`).digest().subarray(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return id;
}

/** The one's complement of the byte sum of the footer, the checksum field itself counted as zero. */
export function vhdChecksum(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < footer.length; i++) if (i < 64 || i >= 68) sum += footer[i]!;
  return ~sum >>> 0;
}

/** The footer of a fixed VHD whose data part is `dataSize` bytes (a whole number of MiB). */
export function vhdFooter(dataSize: number, imageId: string): Buffer {
  if (dataSize <= 0 || dataSize % MiB !== 0) throw new Error(`VHD data size ${dataSize} is not a whole MiB`);
  const footer = Buffer.alloc(FOOTER_SIZE);
  footer.write("conectix", 0, "ascii"); // cookie
  footer.writeUInt32BE(0x00000002, 8); // features: the reserved bit that must always be set
  footer.writeUInt32BE(0x00010000, 12); // file format version 1.0
  footer.writeBigUInt64BE(NO_DATA_OFFSET, 16); // fixed disks have no dynamic header
  footer.writeUInt32BE(VHD_TIMESTAMP, 24);
  footer.write("kbak", 28, "ascii"); // creator application
  footer.writeUInt32BE(0x00010000, 32); // creator version
  footer.write("Wi2k", 36, "ascii"); // creator host OS: the value Azure's own tools write
  footer.writeBigUInt64BE(BigInt(dataSize), 40); // original size
  footer.writeBigUInt64BE(BigInt(dataSize), 48); // current size
  const { cylinders, heads, sectorsPerTrack } = chsGeometry(dataSize);
  footer.writeUInt16BE(cylinders, 56);
  footer.writeUInt8(heads, 58);
  footer.writeUInt8(sectorsPerTrack, 59);
  footer.writeUInt32BE(FIXED_DISK, 60);
  vhdUniqueId(imageId).copy(footer, 68);
  footer.writeUInt8(0, 84); // saved state: none
  footer.writeUInt32BE(vhdChecksum(footer), 64);
  return footer;
}
