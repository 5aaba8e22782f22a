// state.js - the little state every panel shares: the namespace chosen in the navbar (empty: every
// namespace the caller may see), the namespaces seen so far (for the selector's suggestions),
// and whether a view is on screen (panels poll only while theirs is).

const listeners = [];
export const state = {namespace: '', namespaces: new Set(), view: 'agents'};

export function setNamespace(ns) {
  state.namespace = ns;
  for (const fn of listeners) fn(ns);
}

export function onNamespace(fn) { listeners.push(fn); }

// True when the panel `view` is shown and the tab is visible: the condition to poll.
export function visible(view) {
  return state.view === view && document.visibilityState === 'visible';
}
