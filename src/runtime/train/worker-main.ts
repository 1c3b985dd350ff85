// Entry point of the training thread that thread.ts starts: runs the job (job.ts) with the
// workerData it was given, posts progress and the outcome to the main thread, and stops when
// the main thread asks; then it lets go of its port, so the thread ends.
import { writeSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import winston from 'winston';
import { isPermanentError } from '../errors.ts';
import { createRuntimeLogger } from '../log.ts';
import { oneLine } from '../pod.ts';
import { runTrainingJob } from './job.ts';
import { TrainingStop } from './stop.ts';
import {
  type FromWorker,
  type StopMessage,
  TRAINING_THREAD_NICE_STEPS as NICE_STEPS,
  type TrainingJobInput,
} from './thread.ts';

const port = parentPort;
if (port === null) throw new Error('worker-main.ts runs as a worker thread (see thread.ts)');
const input = workerData as TrainingJobInput;
const post = (message: FromWorker): void => port.postMessage(message);

// A worker's process.stderr reaches the process's stderr through the main thread, one chunk per
// turn of this thread's event loop: a line logged before a batch would wait for its end, and be
// lost if the thread is terminated during it. Lines go straight to fd 2 instead.
const log = createRuntimeLogger(input.logMeta);
const stderr = new Writable({
  write(chunk: Buffer, _encoding, done) {
    writeSync(2, chunk);
    done();
  },
});
log.clear().add(new winston.transports.Stream({ stream: stderr }));

// Below the main thread, so that a request arriving while training takes every core of the pod
// preempts training instead of queueing behind it. On Linux the nice value is per thread and
// setpriority(0) sets the calling one's; a failure only loses that preference.
try {
  setPriority(0, Math.min(19, getPriority(0) + NICE_STEPS));
} catch {
  // Not permitted or not supported here.
}

const stop = new TrainingStop();
const onMessage = (message: StopMessage): void => {
  if (message.kind === 'stop') stop.request(message.reason, message.checkpointBy);
};
port.on('message', onMessage);

try {
  const { result, stoppedEarly } = await runTrainingJob(input, {
    signal: stop.signal,
    stop,
    onProgress: (progress) => post({ kind: 'progress', progress }),
    log,
  });
  post({ kind: 'done', result, stoppedEarly });
} catch (err) {
  post({ kind: 'failed', message: oneLine(err), permanent: isPermanentError(err) });
} finally {
  // The port's listener would keep the thread alive after the job.
  port.off('message', onMessage);
  port.unref();
}
