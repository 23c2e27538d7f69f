/**
 * The index entry: what the scanner records about one path of a synced tree.
 */

export type EntryType = 'file' | 'dir' | 'symlink';

export interface Entry {
  /** Relative POSIX path inside the tree, no leading or trailing '/'. */
  path: string;
  type: EntryType;
  /** Bytes for files, 0 for directories, target length for symlinks. */
  size: number;
  /** Modification time in nanoseconds since the epoch (bigint: exceeds 2^53). */
  mtimeNs: bigint;
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Inode number: with size+mtime, decides whether a cached hash still applies. */
  ino: bigint;
  /** Symlink target, verbatim. */
  target?: string;
  /** Hex SHA-256 of the content (files only). */
  hash?: string;
  /**
   * Set when the file was hashed less than RACY_NS after its mtime: a later write in the same
   * timestamp tick would not change size/mtime, so this hash is never reused (git's "racily
   * clean" problem).
   */
  racy?: true;
}
