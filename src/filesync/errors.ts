/**
 * Typed errors of the file sync component. Every rejection carries a stable `code` so callers
 * (RPC handlers, the applier, the CLI) can react without parsing messages.
 */

export type FileSyncErrorCode =
  | 'E_WIRE' // malformed or out-of-bounds data from a peer
  | 'E_DELTA' // delta/patch stream inconsistent with the signature
  | 'E_PATCH_HASH' // reconstructed file does not hash to what the sender announced
  | 'E_STALE' // the sender's file is not the requested version (changed since it was announced)
  | 'E_UNAVAILABLE' // the sender cannot send the requested version (gone, changed or unreadable there)
  | 'E_ARG' // bad argument from local code
  | 'E_PATH' // a path from a peer is unsafe
  | 'E_SYMLINK_PARENT' // a parent directory of a target path is a symlink or not a directory
  | 'E_TREE_ROOT' // tree root vanished, marker missing/different, or other device
  | 'E_MASS_DELETE' // change set would delete too much of a tree
  | 'E_PATTERN'; // invalid include/exclude pattern

export class FileSyncError extends Error {
  readonly code: FileSyncErrorCode;

  constructor(code: FileSyncErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'FileSyncError';
    this.code = code;
  }
}
