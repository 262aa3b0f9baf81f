export { addonTsupConfig as default } from '../core/addon-build.js';
