// One service across datacenters: merging, the snapshot file standing in, the flap guard.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceMerge } from '../../src/discovery/consul-merge.ts';
import type { InstanceSpec } from '../../src/discovery/instance.ts';

function spec(id: string, datacenter: string, healthy = true): InstanceSpec {
  return { id, service: 'orders', host: '127.0.0.1', port: 1, zone: 'sh-a', weight: 1, tags: [], meta: {}, healthy, datacenter };
}

function recorder(maxDropRatio = 0.5) {
  const published: { ids: string[]; live: boolean }[] = [];
  const held: number[] = [];
  const merge = new ServiceMerge({
    service: 'orders',
    maxDropRatio,
    publish: (specs, live) => published.push({ ids: specs.map((s) => s.id).sort(), live }),
    held: ({ healthyNow }) => held.push(healthyNow),
  });
  return { merge, published, held, last: () => published.at(-1) };
}

test('datacenters are merged; an answer equal to the last one publishes nothing', () => {
  const { merge, published } = recorder();
  merge.update('dc1', [spec('a', 'dc1')]);
  merge.update('dc2', [spec('j', 'dc2')]);
  merge.flush();
  merge.update('dc2', [spec('j', 'dc2')]);
  merge.flush();
  assert.deepEqual(published.at(-1), { ids: ['a', 'j'], live: true });
  assert.equal(published.length, 2);
  merge.stop();
});

test('the snapshot file stands in per datacenter until Consul answers for it, and never replaces an answer', () => {
  const { merge, last } = recorder();
  merge.seed(new Map([['dc1', [spec('file-a', 'dc1')]], ['dc2', [spec('file-j', 'dc2')]]]));
  assert.deepEqual(last(), { ids: ['file-a', 'file-j'], live: false });
  assert.equal(merge.answered('dc1'), false);
  merge.update('dc1', [spec('a', 'dc1')]);
  merge.flush();
  assert.deepEqual(last(), { ids: ['a', 'file-j'], live: true }, 'dc2 still from the file');
  assert.equal(merge.answered('dc1'), true);
  merge.seed(new Map([['dc1', [spec('stale', 'dc1')]]]));
  merge.flush();
  assert.deepEqual(last(), { ids: ['a', 'file-j'], live: true }, 'a live answer wins over the file');
  merge.stop();
});

test("the flap guard holds a mass removal once, then applies its confirmation, whatever other datacenters say meanwhile", () => {
  const { merge, last, held } = recorder(0.5);
  assert.equal(merge.update('dc1', ['a', 'b', 'c', 'd'].map((id) => spec(id, 'dc1'))), true);
  const oneLeft = ['a', 'b', 'c', 'd'].map((id) => spec(id, 'dc1', id === 'a'));
  assert.equal(merge.update('dc1', oneLeft), false, 'held');
  assert.deepEqual(held, [1]);
  merge.update('dc2', [spec('j', 'dc2')]);
  merge.flush();
  assert.deepEqual(last(), { ids: ['a', 'b', 'c', 'd', 'j'], live: true });
  assert.equal(merge.update('dc1', oneLeft), true, 'confirmed');
  merge.stop();
});

test('a list from the snapshot file is no baseline for the flap guard: the first answer applies whatever it says', () => {
  const { merge, held } = recorder(0.5);
  merge.seed(new Map([['dc1', ['a', 'b', 'c', 'd'].map((id) => spec(id, 'dc1'))]]));
  assert.equal(merge.update('dc1', [spec('a', 'dc1')]), true);
  assert.deepEqual(held, []);
  merge.stop();
});
