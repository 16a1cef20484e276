// `zonegate health` asks the admin listener where this host reaches it (the command itself: test/cli.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeUrl } from '../../src/admin/probe.ts';

describe('probeUrl', () => {
  it('reaches a listener on every interface through loopback, any other where it listens', () => {
    assert.equal(probeUrl({ host: '0.0.0.0', port: 9901 }, '/healthz'), 'http://127.0.0.1:9901/healthz');
    assert.equal(probeUrl({ host: '', port: 9901 }, '/healthz'), 'http://127.0.0.1:9901/healthz');
    assert.equal(probeUrl({ host: '::', port: 9901 }, '/healthz'), 'http://[::1]:9901/healthz');
    assert.equal(probeUrl({ host: '::1', port: 9901 }, '/healthz'), 'http://[::1]:9901/healthz');
    assert.equal(probeUrl({ host: '10.0.0.5', port: 9901 }, '/healthz'), 'http://10.0.0.5:9901/healthz');
  });
});
