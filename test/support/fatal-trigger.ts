// Preloaded (`node --import`) into a gateway process by tests, to stand in for a bug: on SIGUSR2 the process throws
// an error nothing catches; on SIGWINCH it leaves a promise rejection unhandled.
export const THROWN_MESSAGE = 'fatal-trigger: thrown on SIGUSR2';
export const REJECTED_MESSAGE = 'fatal-trigger: rejected on SIGWINCH';

process.on('SIGUSR2', () => {
  setImmediate(() => {
    throw new Error(THROWN_MESSAGE);
  });
});
process.on('SIGWINCH', () => {
  void Promise.reject(new Error(REJECTED_MESSAGE));
});
