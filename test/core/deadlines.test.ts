// The deadline wheel: tasks expire after their deadline (never before), disarmed ones never, re-armed ones at the
// new deadline, and the interval stops once nothing is left.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadlineWheel, type Expiring } from '../../src/core/deadlines.ts';
import { pollUntil } from '../support/http.ts';

class Task implements Expiring {
  deadline: number;
  expiredAt = 0;
  count = 0;
  constructor(inMs: number) {
    this.deadline = performance.now() + inMs;
  }
  expire(): void {
    this.expiredAt = performance.now();
    this.count++;
  }
}

describe('DeadlineWheel', () => {
  it('expires each task once, not before its deadline', async () => {
    const wheel = new DeadlineWheel(5);
    const tasks = Array.from({ length: 60 }, (_, i) => new Task(i * 3));
    const due = tasks.map((task) => task.deadline);
    for (const task of tasks) wheel.add(task);
    await pollUntil(() => (tasks.every((task) => task.count > 0) ? true : undefined), 5000, 'every task to expire');
    tasks.forEach((task, i) => {
      assert.equal(task.count, 1);
      assert.ok(task.expiredAt >= due[i]!, `task ${i} expired ${(due[i]! - task.expiredAt).toFixed(1)} ms early`);
    });
  });

  it('never expires a disarmed task, and expires a re-armed one at its new deadline', async () => {
    const wheel = new DeadlineWheel(5);
    const disarmed = new Task(10);
    const rearmed = new Task(10);
    const witness = new Task(60);
    for (const task of [disarmed, rearmed, witness]) wheel.add(task);
    disarmed.deadline = 0;
    rearmed.deadline = performance.now() + 40;
    const later = rearmed.deadline;
    await pollUntil(() => (witness.count > 0 && rearmed.count > 0 ? true : undefined), 5000, 'the witness and the re-armed task');
    assert.equal(disarmed.count, 0);
    assert.ok(rearmed.expiredAt >= later);
  });

  it('serves deadlines past one turn of the wheel', async () => {
    const wheel = new DeadlineWheel(1); // 1,024 slots of 1 ms: 1.5 s is more than a turn
    const task = new Task(1500);
    const due = task.deadline;
    wheel.add(task);
    await pollUntil(() => (task.count > 0 ? true : undefined), 5000, 'the task');
    assert.ok(task.expiredAt >= due);
    assert.equal(task.count, 1);
  });
});
