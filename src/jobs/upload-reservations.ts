import { ConflictError } from '../errors';
import type { OutputReservations } from '../storage/uploads';
import type { JobStore } from './job-store';

/**
 * Uploads and jobs share one namespace of checkpoint names: an upload holds the name in the job
 * reservations while it installs (so no job can reserve it meanwhile) and is refused a name a
 * queued or running job will write. The hold expires after `holdSeconds` should the API crash.
 */
export class UploadReservations implements OutputReservations {
  constructor(
    private readonly store: JobStore,
    private readonly holdSeconds: number,
  ) {}

  /** `name` is the reservation name (outputReservationName); `displayName` the checkpoint's own, for the message. */
  async hold<T>(name: string, uploadId: string, install: () => Promise<T>, displayName = name): Promise<T> {
    if (!(await this.store.holdForUpload(name, uploadId, this.holdSeconds))) {
      throw new ConflictError('checkpoint_reserved', `A queued or running job (or another upload) will write the checkpoint "${displayName}"; choose another name.`, '/name');
    }
    try {
      return await install();
    } finally {
      await this.store.releaseUploadHold(name, uploadId);
    }
  }
}
