// What the runtime's modules need of a logger; the winston logger of main.ts is one.

export interface RuntimeLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

export const noLog: RuntimeLog = { info: () => undefined, warn: () => undefined };
