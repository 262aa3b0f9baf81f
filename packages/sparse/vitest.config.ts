export { addonVitestConfig as default } from '../core/addon-build.js';
