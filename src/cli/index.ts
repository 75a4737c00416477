export { main, kubebake, bakeImage } from "./main";
