/** Programmatic entry of the benchmark tool: the pure protocol pieces (tests, notebooks) and the CLI's main. */
export { main } from './cli.js';
export * from './protocol.js';
export * from './schema.js';
export * from './summary.js';
export { speedupSvg } from './svg.js';
