console.log("hello!");
