// The drill tests' fleet: one service in three zones of two cities, breakers that reset after 500 ms.

/** Addresses are placeholders: the drill moves every instance to a free loopback port. */
export const FLEET_YAML = `
gateway: { zone: sh-a }
topology:
  cn-east: { shanghai: [sh-a, sh-b] }
  cn-north: { beijing: [bj-a] }
discovery:
  static:
    app:
      - { address: 127.0.0.1:1, zone: sh-a }
      - { address: 127.0.0.1:2, zone: sh-b }
      - { address: 127.0.0.1:3, zone: bj-a }
routes:
  - name: app
    match: { prefix: /api }
    service: app
    breaker: { resetTimeout: 500ms }
`;
