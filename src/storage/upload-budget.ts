import { promises as fs } from 'node:fs';
import { Transform } from 'node:stream';
import type { Config } from '../config';
import { GraftError } from '../errors';
import { archiveLimits, type ArchiveLimits } from './archive';
import { datasetLimits, type DatasetLimits } from './datasets';

/**
 * What uploads may use, per request and per process: uploads at once (429), bytes and files per
 * request (413), and the free space they must leave on the volume (507), checked before the body
 * is read and again once the upload's size is known.
 */

/** What a client refused for lack of an upload slot is told to wait: uploads take seconds, not minutes. */
const RETRY_AFTER_SECONDS = 5;

export interface UploadLimits {
  archive: ArchiveLimits;
  dataset: DatasetLimits;
  /** All parts of one request together. */
  maxRequestBytes: number;
  /** File parts of one request. */
  maxFiles: number;
  /** Uploads one process receives at once. */
  maxConcurrent: number;
  /** Free bytes an upload must leave on the volume. */
  diskFreeFloorBytes: number;
}

export type UploadConfig = Pick<
  Config,
  | 'ARCHIVE_MAX_TOTAL_BYTES' | 'ARCHIVE_MAX_ENTRIES' | 'ARCHIVE_MAX_ENTRY_BYTES' | 'DATASET_MAX_BYTES' | 'IMAGE_MAX_PIXELS' | 'IMAGE_MAX_DIMENSION'
  | 'UPLOAD_MAX_REQUEST_BYTES' | 'UPLOAD_MAX_FILES' | 'UPLOADS_MAX_CONCURRENT' | 'DISK_FREE_FLOOR_BYTES'
>;

export function uploadLimits(config: UploadConfig): UploadLimits {
  return {
    archive: archiveLimits(config),
    dataset: datasetLimits(config),
    maxRequestBytes: config.UPLOAD_MAX_REQUEST_BYTES,
    maxFiles: config.UPLOAD_MAX_FILES,
    maxConcurrent: config.UPLOADS_MAX_CONCURRENT,
    diskFreeFloorBytes: config.DISK_FREE_FLOOR_BYTES,
  };
}

/** 429 with the seconds to wait, which the route sends as Retry-After. */
export class TooManyUploadsError extends GraftError {
  constructor(max: number) {
    super('too_many_uploads', `This server receives at most ${max} uploads at once (UPLOADS_MAX_CONCURRENT); retry in ${RETRY_AFTER_SECONDS} s.`, { statusCode: 429, retryAfterSeconds: RETRY_AFTER_SECONDS });
  }
}

export interface UploadTicket {
  /** Frees the slot; safe to call more than once. */
  release(): void;
}

export class UploadBudget {
  private inFlight = 0;

  constructor(
    /** A folder on the volume uploads are written to (DATA_DIR). */
    private readonly volume: string,
    private readonly limits: UploadLimits,
  ) {}

  /**
   * Admits an upload before its body is read: a free slot (429), a declared size within the
   * request budget (413) and room on the volume for it (507). The caller must call `release`.
   */
  async admit(contentLength: number | null): Promise<UploadTicket> {
    if (this.inFlight >= this.limits.maxConcurrent) throw new TooManyUploadsError(this.limits.maxConcurrent);
    this.inFlight++;
    let released = false;
    const ticket = { release: () => { if (!released) { released = true; this.inFlight--; } } };
    try {
      if (contentLength !== null && contentLength > this.limits.maxRequestBytes) throw requestTooLarge(this.limits.maxRequestBytes);
      await this.ensureRoom(contentLength ?? 0);
      return ticket;
    } catch (err) {
      ticket.release();
      throw err;
    }
  }

  /** 507 unless writing `bytes` more would still leave DISK_FREE_FLOOR_BYTES free on the volume. */
  async ensureRoom(bytes: number): Promise<void> {
    const stats = await fs.statfs(this.volume);
    const free = stats.bavail * stats.bsize;
    if (free - bytes < this.limits.diskFreeFloorBytes) {
      throw new GraftError(
        'insufficient_storage',
        `The data volume has ${free} bytes free; this upload${bytes > 0 ? ` (${bytes} bytes)` : ''} would leave less than the ${this.limits.diskFreeFloorBytes} bytes it must keep free (DISK_FREE_FLOOR_BYTES). Delete unused datasets or checkpoints, or try later.`,
        { statusCode: 507 },
      );
    }
  }

  /** Counts the bytes of all file parts of one request (one counter per request). */
  requestCounter(): RequestBytes {
    return new RequestBytes(this.limits.maxRequestBytes);
  }
}

function requestTooLarge(max: number): GraftError {
  return new GraftError('upload_too_large', `An upload request may hold at most ${max} bytes (UPLOAD_MAX_REQUEST_BYTES).`, { statusCode: 413 });
}

/** Counts the bytes of all file parts of one request and stops the request past the budget. */
export class RequestBytes {
  total = 0;
  constructor(private readonly max: number) {}

  stream(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.total += chunk.length;
        done(this.total > this.max ? requestTooLarge(this.max) : null, chunk);
      },
    });
  }
}
