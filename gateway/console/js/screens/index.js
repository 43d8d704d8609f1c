// The screens and who sees them (the API scopes what each role reads; this only hides what it would refuse).
// The board, the screen a console opens on, comes with the shell; the others load when first opened.
import { Board } from "./board.js";

const OFFICERS = ["admin", "command", "squadron", "station"];
const DISTRICT = ["admin", "command"];

export const SCREENS = [
  { name: "board", roles: OFFICERS, load: async () => Board },
  { name: "tracing", roles: OFFICERS, load: async () => (await import("./tracing.js")).Tracing },
  { name: "assessment", roles: OFFICERS, load: async () => (await import("./assessment.js")).Assessment },
  { name: "map", roles: OFFICERS, load: async () => (await import("./map.js")).DistrictMap },
  { name: "classification", roles: DISTRICT, load: async () => (await import("./classification.js")).Classification },
  { name: "dispatch", roles: OFFICERS, load: async () => (await import("./dispatch.js")).Dispatch },
];
