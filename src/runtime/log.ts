// The runtime's logs: winston JSON lines on stderr, as the operator's (src/core/logging.ts), but
// its own, since the runtime does not import the operator. What its modules need of a logger is
// RuntimeLog; the logger of modes/train.ts is one.
import winston from 'winston';

export interface RuntimeLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

export const noLog: RuntimeLog = { info: () => undefined, warn: () => undefined };

export function createRuntimeLogger(defaultMeta: Record<string, string>): winston.Logger {
  return winston.createLogger({
    level: 'info',
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    defaultMeta: { logger: 'lepton-runtime', ...defaultMeta },
    transports: [
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] }),
    ],
    exitOnError: false,
  });
}
