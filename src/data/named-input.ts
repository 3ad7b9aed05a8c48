/** The check that a model input named by the caller exists lives with the one data-input rule; re-exported. */
export { checkInputName } from './data-input.js';
