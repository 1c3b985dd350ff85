// winston JSON logs. Messages follow the Kubernetes conventions: capitalised, past tense for what
// happened, no final period, context as fields (controller, namespace, name, reconcileID).
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export function createLogger(
  level: LogLevel = 'info',
  defaultMeta: Record<string, string> = {},
): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    defaultMeta: { logger: 'lepton-operator', ...defaultMeta },
    // Logs go to stderr so stdout stays free for command output such as --help.
    transports: [
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] }),
    ],
    exitOnError: false,
  });
}
